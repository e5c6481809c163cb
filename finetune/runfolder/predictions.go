package runfolder

import (
	"encoding/csv"
	"io"
	"strconv"

	"github.com/finetune-go/finetune/finetune"
)

// Split is the per-image results of one dataset, named.
type Split struct {
	// Name is "validation", "test", or what the caller calls its data.
	Name   string
	Images []finetune.ImageResult
}

// WritePredictions writes the per-image results of splits to w as CSV
// (RFC 4180, names quoted where they need it), as predictions.csv holds
// them: a header, then a row per image: path, split, true class,
// predicted class, a probability per class (column prob_<class>) and the
// image's cross entropy. Numbers are written in full precision, so the
// rows give back the evaluation exactly: the accuracy is the fraction of
// rows whose true and predicted classes agree, the loss their mean loss.
func WritePredictions(w io.Writer, classes []string, splits ...Split) error {
	cw := csv.NewWriter(w)
	header := []string{"path", "split", "true", "predicted"}
	for _, c := range classes {
		header = append(header, "prob_"+c)
	}
	if err := cw.Write(append(header, "loss")); err != nil {
		return err
	}
	for _, s := range splits {
		for _, r := range s.Images {
			row := []string{r.Path, s.Name, classes[r.Label], classes[r.Predicted]}
			for _, p := range r.Probabilities {
				row = append(row, strconv.FormatFloat(p, 'g', -1, 64))
			}
			if err := cw.Write(append(row, strconv.FormatFloat(r.Loss, 'g', -1, 64))); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
