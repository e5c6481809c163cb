package runfolder

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/finetune-go/finetune/finetune"
)

// report is what report.html shows of a run that ended.
type report struct {
	Title     string
	Config    finetune.Config
	Plan      *finetune.Plan
	Result    *finetune.Result
	Curves    template.URL
	Confusion []figure
	Tables    []classTable
	Probe     *probeRow
	TopLosses template.URL
	TopSplit  string
	Stages    []stageTime
}

// figure is an embedded picture with its caption.
type figure struct {
	Caption string
	Src     template.URL
}

type classTable struct {
	Split    string
	Accuracy float64
	Loss     float64
	MacroF1  float64
	Images   int64
	Rows     []finetune.ClassMetrics
}

type probeRow struct {
	Probe, Model float64
	Verdict      string
}

type stageTime struct {
	Stage   string
	Epochs  int
	Seconds float64
}

// dataURI embeds a PNG.
func dataURI(png []byte) template.URL {
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}

// render draws a picture into memory.
func render(draw func(io.Writer) error) ([]byte, error) {
	var b bytes.Buffer
	if err := draw(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeReport writes report.html: one self-contained page (pictures
// embedded as data: URIs) with the plan and its reasons, the curves, the
// test and validation confusion matrices and per-class metrics, the probe
// against the final model, the top losses and the times.
func writeReport(w io.Writer, r *run, res *finetune.Result, curves []byte, confusion []figure) error {
	rep := report{Title: "finetune run", Config: r.config, Plan: r.plan, Result: res, Confusion: confusion}
	if r.plan == nil {
		rep.Plan = res.Plan
	}
	if curves != nil {
		rep.Curves = dataURI(curves)
	}
	for _, e := range []struct {
		split string
		ev    *finetune.Evaluation
	}{{"test", res.Test}, {"validation", res.Val}} {
		if e.ev != nil {
			c := e.ev.Confusion
			rep.Tables = append(rep.Tables, classTable{Split: e.split, Accuracy: e.ev.Accuracy, Loss: e.ev.Loss,
				MacroF1: c.MacroF1(), Images: c.Total(), Rows: c.PerClass()})
		}
	}
	if p := res.ProbeAccuracy; p != nil && res.Val != nil {
		row := &probeRow{Probe: *p, Model: res.Val.Accuracy, Verdict: "the final model does better than the frozen features alone"}
		switch {
		case res.EndedWithProbe:
			row.Verdict = "no epoch beat the probe's model on validation: the model is the probe's (probe_fallback)"
		case *p > res.Val.Accuracy:
			row.Verdict = "the frozen features alone did better (recipe: linear-probe keeps that model)"
		}
		rep.Probe = row
	}
	if tl := r.topLosses; tl != nil && r.topLossPNG != nil {
		rep.TopLosses, rep.TopSplit = dataURI(r.topLossPNG), tl.Split
	}
	for _, em := range r.history {
		if n := len(rep.Stages); n == 0 || rep.Stages[n-1].Stage != em.Stage {
			rep.Stages = append(rep.Stages, stageTime{Stage: em.Stage})
		}
		s := &rep.Stages[len(rep.Stages)-1]
		s.Epochs++
		s.Seconds += em.Seconds
	}
	return reportPage.Execute(w, rep)
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":      func(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) },
	"f4":       func(v float64) string { return fmt.Sprintf("%.4f", v) },
	"duration": func(s float64) string { return (time.Duration(s*10) * time.Second / 10).String() },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}: {{.Config.Model.Arch}} on {{.Config.Data.Train}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;border:1px solid #eee}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
</style></head><body>
<h1>{{.Config.Model.Arch}} on {{.Config.Data.Train}}</h1>
<p>{{with .Result.Test}}Test accuracy <b>{{pct .Accuracy}}</b>, {{end}}{{with .Result.Val}}validation accuracy <b>{{pct .Accuracy}}</b>, {{end}}best epoch {{.Result.Best.GlobalEpoch}} ({{.Result.Best.Stage}} {{.Result.Best.Epoch}}), {{duration .Result.Seconds}}.</p>

<section id="plan"><h2>The plan and why</h2>
{{with .Plan}}<p>Device {{.Device}}, precision {{.Precision}}, BatchNorm {{.BatchNorm}}, head starts {{.HeadStart}}.</p>
<table><tr><th>stage</th><th>epochs</th><th>freeze</th><th>head lr</th><th>backbone lr ×</th><th>weight decay</th><th>steps/epoch</th><th>cached</th></tr>
{{range .Stages}}<tr><td>{{.Name}}</td><td class="n">{{.Epochs}}</td><td>{{.Freeze}}</td><td class="n">{{.LR}}</td><td class="n">{{.BackboneLRMult}}</td><td class="n">{{.WeightDecay}}</td><td class="n">{{.StepsPerEpoch}}</td><td>{{.Cache}}</td></tr>
{{end}}</table>
<table><tr><th>setting</th><th>chosen</th><th>why</th></tr>
{{range .Decisions}}<tr><td>{{.Key}}</td><td>{{.Value}}</td><td>{{.Reason}}</td></tr>
{{else}}<tr><td colspan="3">every setting was given: no automatic decision</td></tr>
{{end}}</table>{{else}}<p>No plan recorded.</p>{{end}}
</section>

<section id="curves"><h2>Learning curves</h2>
{{if .Curves}}<img alt="learning curves" src="{{.Curves}}">{{else}}<p>No epochs: the run trained no stage.</p>{{end}}
</section>

<section id="confusion"><h2>Confusion matrices</h2>
<div class="figs">{{range .Confusion}}<figure><img alt="{{.Caption}} confusion matrix" src="{{.Src}}"><figcaption>{{.Caption}}</figcaption></figure>{{end}}</div>
</section>

<section id="per-class"><h2>Per-class metrics</h2>
{{range .Tables}}<h3>{{.Split}}: accuracy {{pct .Accuracy}}, loss {{f4 .Loss}}, macro F1 {{f4 .MacroF1}}, {{.Images}} images</h3>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
{{range .Rows}}<tr><td>{{.Class}}</td><td class="n">{{f4 .Precision}}</td><td class="n">{{f4 .Recall}}</td><td class="n">{{f4 .F1}}</td><td class="n">{{.Support}}</td></tr>
{{end}}</table>{{end}}
</section>

<section id="probe"><h2>Linear probe against the final model</h2>
{{with .Probe}}<table><tr><th>model</th><th>validation accuracy</th></tr>
<tr><td>linear probe (logistic regression on the frozen features)</td><td class="n">{{pct .Probe}}</td></tr>
<tr><td>final model</td><td class="n">{{pct .Model}}</td></tr></table>
<p>{{.Verdict}}.</p>{{else}}<p>The linear probe did not run.</p>{{end}}
</section>

<section id="top-losses"><h2>Top losses</h2>
{{if .TopLosses}}<p>The {{.TopSplit}} images with the highest loss, each with the Grad-CAM map of the class it was given (red: where the evidence is strongest).</p>
<img alt="top losses with Grad-CAM" src="{{.TopLosses}}">{{else}}<p>No images to show.</p>{{end}}
</section>

<section id="times"><h2>Times</h2>
<table><tr><th>stage</th><th>epochs</th><th>time</th></tr>
{{range .Stages}}<tr><td>{{.Stage}}</td><td class="n">{{.Epochs}}</td><td class="n">{{duration .Seconds}}</td></tr>
{{end}}<tr><th>whole run</th><td></td><td class="n">{{duration .Result.Seconds}}</td></tr></table>
</section>
</body></html>
`))

// planMarkdown is the run's hyperparameters and the plan's decisions as
// markdown tables, for TensorBoard's text dashboard.
func planMarkdown(cfg finetune.Config, plan *finetune.Plan) string {
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }
	b.WriteString("| setting | value |\n|---|---|\n")
	for _, kv := range [][2]string{
		{"model.arch", cfg.Model.Arch}, {"model.weights", cfg.Model.Weights}, {"data.image_size", fmt.Sprint(cfg.Data.ImageSize)},
		{"data.batch_size", fmt.Sprint(cfg.Data.BatchSize)}, {"train.optimizer", cfg.Train.Optimizer},
		{"train.schedule", cfg.Train.Schedule}, {"device", plan.Device}, {"precision", plan.Precision},
		{"batchnorm", plan.BatchNorm}, {"head start", plan.HeadStart},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], cell(kv[1]))
	}
	b.WriteString("\n| stage | epochs | freeze | lr | backbone lr × | weight decay |\n|---|---|---|---|---|---|\n")
	for _, s := range plan.Stages {
		fmt.Fprintf(&b, "| %s | %d | %s | %g | %g | %g |\n", cell(s.Name), s.Epochs, s.Freeze, s.LR, s.BackboneLRMult, s.WeightDecay)
	}
	if len(plan.Decisions) > 0 {
		b.WriteString("\n| decided | value | why |\n|---|---|---|\n")
		for _, d := range plan.Decisions {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(d.Key), cell(d.Value), cell(d.Reason))
		}
	}
	return b.String()
}
