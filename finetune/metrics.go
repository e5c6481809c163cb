package finetune

import (
	"fmt"
	"math"
	"strings"

	"github.com/finetune-go/finetune/internal/printable"
)

// Confusion is a confusion matrix: Counts[true][predicted].
type Confusion struct {
	Classes []string
	Counts  [][]int64
}

// NewConfusion returns an empty matrix over classes.
func NewConfusion(classes []string) *Confusion {
	c := &Confusion{Classes: classes, Counts: make([][]int64, len(classes))}
	for i := range c.Counts {
		c.Counts[i] = make([]int64, len(classes))
	}
	return c
}

// Add counts predictions against labels.
func (c *Confusion) Add(labels, preds []int64) {
	for i, y := range labels {
		c.Counts[y][preds[i]]++
	}
}

// Total returns the number of samples counted.
func (c *Confusion) Total() int64 {
	var n int64
	for _, row := range c.Counts {
		for _, v := range row {
			n += v
		}
	}
	return n
}

// Accuracy is the fraction of samples on the diagonal.
func (c *Confusion) Accuracy() float64 {
	var hit int64
	for i := range c.Counts {
		hit += c.Counts[i][i]
	}
	if n := c.Total(); n > 0 {
		return float64(hit) / float64(n)
	}
	return 0
}

// ClassMetrics are one class's precision, recall and F1 with its support.
type ClassMetrics struct {
	Class                 string  `json:"class"`
	Precision, Recall, F1 float64 `json:"-"`
	Support               int64   `json:"support"`
}

// PerClass returns precision, recall and F1 of every class (0 where
// undefined, as scikit-learn's zero_division=0).
func (c *Confusion) PerClass() []ClassMetrics {
	out := make([]ClassMetrics, len(c.Classes))
	for k := range c.Classes {
		var tp, predicted, actual int64
		tp = c.Counts[k][k]
		for i := range c.Counts {
			predicted += c.Counts[i][k]
			actual += c.Counts[k][i]
		}
		m := ClassMetrics{Class: c.Classes[k], Support: actual}
		if predicted > 0 {
			m.Precision = float64(tp) / float64(predicted)
		}
		if actual > 0 {
			m.Recall = float64(tp) / float64(actual)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
		out[k] = m
	}
	return out
}

// MacroF1 is the unweighted mean of the classes' F1.
func (c *Confusion) MacroF1() float64 {
	var s float64
	pc := c.PerClass()
	for _, m := range pc {
		s += m.F1
	}
	return s / float64(len(pc))
}

// Table prints the per-class metrics and the matrix. Class names are
// escaped for a terminal (see printable.Name).
func (c *Confusion) Table() string {
	var b strings.Builder
	w := 5
	names := printable.Names(c.Classes)
	for _, name := range names {
		w = max(w, len(name))
	}
	fmt.Fprintf(&b, "%-*s  %9s  %6s  %6s  %7s\n", w, "class", "precision", "recall", "f1", "support")
	for i, m := range c.PerClass() {
		fmt.Fprintf(&b, "%-*s  %9.4f  %6.4f  %6.4f  %7d\n", w, names[i], m.Precision, m.Recall, m.F1, m.Support)
	}
	fmt.Fprintf(&b, "\nconfusion (rows: true, columns: predicted)\n%-*s", w, "")
	for _, name := range names {
		fmt.Fprintf(&b, "  %*s", max(len(name), 5), name)
	}
	b.WriteString("\n")
	for i, row := range c.Counts {
		fmt.Fprintf(&b, "%-*s", w, names[i])
		for j, v := range row {
			fmt.Fprintf(&b, "  %*d", max(len(names[j]), 5), v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// meanStd returns the mean and sample standard deviation of xs.
func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs)-1))
}
