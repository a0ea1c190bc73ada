package bench

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WritePlot draws the runs' throughput and p99 latency over time, one line
// per run, with the events as dashed vertical lines, to path. The format
// follows the extension: .svg, .png, .pdf, .jpg, .tiff or .eps (gonum/plot).
func WritePlot(path, title string, runs []*Report, events []Event) error {
	canvas, err := plotCanvas(path, 8*vg.Inch, 6*vg.Inch)
	if err != nil {
		return err
	}
	thr, p99 := plot.New(), plot.New()
	thr.Title.Text = title
	thr.Y.Label.Text = "calls/s"
	p99.Y.Label.Text = "p99 (ms)"
	p99.X.Label.Text = "time (s)"
	thr.Legend.Top, thr.Legend.Left = true, true
	for _, p := range []*plot.Plot{thr, p99} {
		p.X.Min, p.Y.Min = 0, 0
		p.Add(plotter.NewGrid())
	}
	var maxThr, maxP99 float64
	for i, r := range runs {
		series := r.Series
		if len(series) > 1 {
			series = series[:len(series)-1] // the last bucket is partial
		}
		width := float64(r.BucketMs) / 1e3
		if width <= 0 {
			width = DefaultBucket.Seconds()
		}
		tp, lp := make(plotter.XYs, len(series)), make(plotter.XYs, len(series))
		for j, b := range series {
			t := float64(b.TMs)/1e3 + width/2
			tp[j] = plotter.XY{X: t, Y: float64(b.OK) / width}
			lp[j] = plotter.XY{X: t, Y: float64(b.P99Us) / 1e3}
			maxThr, maxP99 = max(maxThr, tp[j].Y), max(maxP99, lp[j].Y)
		}
		name := r.Label
		if name == "" {
			name = string(r.Workload)
		}
		for k, pts := range []plotter.XYs{tp, lp} {
			if len(pts) == 0 {
				continue
			}
			l, err := seriesLine(path, pts, i)
			if err != nil {
				return err
			}
			if k == 0 {
				thr.Add(l)
				thr.Legend.Add(name, l)
			} else {
				p99.Add(l)
			}
		}
	}
	for _, p := range []struct {
		p   *plot.Plot
		top float64
	}{{thr, maxThr}, {p99, maxP99}} {
		top := max(p.top, 1)
		p.p.Y.Max = top * 1.25 // room for the legend and the event labels
		if err := addEvents(p.p, events, top*1.1); err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
	}
	return drawStacked(path, canvas, []*plot.Plot{thr, p99})
}

// drawStacked draws plots one above the other, their X axes aligned, on
// canvas and writes it to path.
func drawStacked(path string, canvas vg.CanvasWriterTo, plots []*plot.Plot) error {
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 2 * vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: 3 * vg.Millimeter}
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	cs := plot.Align(rows, tiles, draw.New(canvas))
	for i, p := range plots {
		p.Draw(cs[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}

// seriesLine is the line of series i of a plot: the palette's color i,
// 1.5 points wide.
func seriesLine(path string, pts plotter.XYs, i int) (*plotter.Line, error) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", path, err)
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	return l, nil
}

// addEvents draws each event as a dashed vertical line from 0 to top,
// labelled with its kind and gateway.
func addEvents(p *plot.Plot, events []Event, top float64) error {
	if len(events) == 0 {
		return nil
	}
	lbl := plotter.XYLabels{}
	for _, e := range events {
		x := float64(e.TMs) / 1e3
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = color.Gray{Y: 90}
		p.Add(l)
		lbl.XYs = append(lbl.XYs, plotter.XY{X: x, Y: top})
		lbl.Labels = append(lbl.Labels, " "+e.Kind+" "+e.Gateway)
	}
	labels, err := plotter.NewLabels(lbl)
	if err != nil {
		return err
	}
	p.Add(labels)
	return nil
}

// CheckPlotPath reports whether WritePlot can write path's format, so that
// a command can refuse a bad --plot before a run rather than after it.
func CheckPlotPath(path string) error {
	_, err := plotCanvas(path, vg.Inch, vg.Inch)
	return err
}

func plotCanvas(path string, w, h vg.Length) (vg.CanvasWriterTo, error) {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format == "jpeg" {
		format = "jpg"
	}
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w (use .svg or .png)", path, err)
	}
	return c, nil
}
