package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// soakTablePoints is how many samples per process the table shows, evenly
// spread over the soak (the JSON has them all).
const soakTablePoints = 10

// writeSoakTable writes the soak's verdict, each check, the samples at a
// few times and the churn's counts.
func writeSoakTable(w io.Writer, sr *SoakReport) error {
	full := "never full"
	if sr.FullMs != nil {
		full = fmt.Sprintf("full at %.1fs; window from %.1fs", float64(*sr.FullMs)/1e3, float64(sr.WindowFromMs)/1e3)
	}
	fmt.Fprintf(w, "\nsoak: %s (session table of %d %s; samples every %.0fs)\n", strings.ToUpper(sr.Verdict), sr.MaxSessions, full,
		float64(sr.SampleEveryMs)/1e3)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "process\tmetric\tM1\tM2\tM3\tmax\tslope/min\tgrowth\ttolerance\tverdict")
	for _, p := range sr.Processes {
		for _, g := range p.Checks {
			f := func(v float64) string { return fmtMetric(g.Metric, v) }
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, g.Metric, f(g.Medians[0]), f(g.Medians[1]), f(g.Medians[2]),
				f(g.Max), f(g.SlopePerMin), f(g.Growth), f(g.Tolerance), g.Verdict)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nsamples over time (RSS MB / goroutines / fds / sessions held):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, p := range sr.Processes {
		idx := spread(len(p.Samples), soakTablePoints)
		if i == 0 {
			head := []string{"process"}
			for _, j := range idx {
				head = append(head, fmt.Sprintf("%.0fs", float64(p.Samples[j].TMs)/1e3))
			}
			fmt.Fprintln(tw, strings.Join(head, "\t"))
		}
		cols := []string{p.Name}
		for _, j := range idx {
			s := p.Samples[j]
			cols = append(cols, fmt.Sprintf("%s/%s/%s/%s", optMB(s.RSS), optInt(s.Goroutines), optInt(s.FDs), optFloat(s.Sessions, "%.0f")))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
		if p.Errors > 0 {
			fmt.Fprintf(tw, "%s: %d readings failed, first: %s\n", p.Name, p.Errors, p.FirstError)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	wl := sr.Workload
	fmt.Fprintf(w, "\nchurn: %d connections, %d carts forgotten, %d released, %d sessions refused (table full), "+
		"%d events, %d callbacks, %d ONEWAY calls; slow readers: %d connections, %d cut off, %d KiB read; failures: %s\n",
		wl.ConnsOpened, wl.CartsForgotten, wl.CartsReleased, wl.RefusedTableFull, wl.Events, wl.Callbacks, wl.Oneway,
		wl.SlowConns, wl.SlowCutoffs, wl.SlowBytesRead>>10, errorsString(wl.Failures))
	for _, code := range slices.Sorted(maps.Keys(wl.FailureSamples)) {
		fmt.Fprintf(w, "churn: first %s: %s\n", code, wl.FailureSamples[code])
	}
	fmt.Fprintf(w, "criterion: %s\n\n", sr.Criterion)
	return nil
}

// spread returns up to k indexes of 0..n-1, evenly spaced, the first and
// the last included.
func spread(n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, k)
	for i := range out {
		out[i] = i * (n - 1) / (k - 1)
	}
	return out
}

func optMB(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(*v)/1e6)
}

// WriteSoakPlot draws the soak's samples, one panel per metric (RSS,
// goroutines, open fds, sessions held) and one line per process, with the
// events, the time the table filled and the start of the judged window as
// dashed lines, to path (.svg, .png, ...: see WritePlot).
func WriteSoakPlot(path, title string, sr *SoakReport, events []Event) error {
	canvas, err := plotCanvas(path, 8*vg.Inch, 10*vg.Inch)
	if err != nil {
		return err
	}
	if sr.FullMs != nil {
		events = append(slices.Clone(events), Event{TMs: *sr.FullMs, Kind: "table full"}, Event{TMs: sr.WindowFromMs, Kind: "window"})
	}
	panels := []struct {
		label string
		value func(Sample) (float64, bool)
	}{
		{"RSS (MB)", func(s Sample) (float64, bool) { return deref(s.RSS, 1e-6) }},
		{"goroutines", func(s Sample) (float64, bool) { return deref(s.Goroutines, 1) }},
		{"open fds", func(s Sample) (float64, bool) { return deref(s.FDs, 1) }},
		{"sessions held", func(s Sample) (float64, bool) {
			if s.Sessions == nil {
				return 0, false
			}
			return *s.Sessions, true
		}},
	}
	var plots []*plot.Plot
	for k, pn := range panels {
		p := plot.New()
		p.Y.Label.Text = pn.label
		p.X.Min, p.Y.Min = 0, 0
		p.Add(plotter.NewGrid())
		if k == 0 {
			p.Title.Text = title
			p.Legend.Top = true // top right: the events' labels are at the left
		}
		if k == len(panels)-1 {
			p.X.Label.Text = "time (s)"
		}
		var top float64
		for i, ps := range sr.Processes {
			var pts plotter.XYs
			for _, s := range ps.Samples {
				if v, ok := pn.value(s); ok {
					pts = append(pts, plotter.XY{X: float64(s.TMs) / 1e3, Y: v})
					top = max(top, v)
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, err := seriesLine(path, pts, i)
			if err != nil {
				return err
			}
			p.Add(l)
			if k == 0 {
				p.Legend.Add(ps.Name, l)
			}
		}
		top = max(top, 1)
		p.Y.Max = top * 1.25
		if err := addEvents(p, events, top*1.1); err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		plots = append(plots, p)
	}
	return drawStacked(path, canvas, plots)
}

func deref(v *int64, scale float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return float64(*v) * scale, true
}
