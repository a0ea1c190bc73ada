package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/graftlb/graftlb/bench"
)

// WriteSummary prints the run's table: faults by kind with their recovery
// times, the calls and sessions, and every violation.
func (r *Result) WriteSummary(w io.Writer) {
	type kindStats struct {
		n              int
		thr, pool      []int64
		notRecov, errs int
	}
	byKind := map[string]*kindStats{}
	for _, f := range r.Faults {
		k := byKind[f.Kind]
		if k == nil {
			k = &kindStats{}
			byKind[f.Kind] = k
		}
		k.n++
		if f.Err != "" {
			k.errs++
		}
		if f.Recovered {
			k.thr = append(k.thr, f.ThroughputMs)
		} else {
			k.notRecov++
		}
		if f.PoolRecovered {
			k.pool = append(k.pool, f.PoolTruthMs)
		}
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "chaos run, seed %d: %d faults in %v\n\n", r.Seed, len(r.Faults), (time.Duration(r.DurationMs) * time.Millisecond).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tcount\tthroughput back (p50 / max ms)\tpool true (p50 / max ms)\tnot recovered\terrors\t")
	for _, k := range kinds {
		s := byKind[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t\n", k, s.n, p50max(s.thr), p50max(s.pool), s.notRecov, s.errs)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\ncalls: %d ok, %d failed %v\n", r.CallsOK, r.CallsFailed, r.Errors)
	fmt.Fprintf(w, "sessions: %d started, %d verified, %d lost (%d with their owner killed), %d misrouted\n",
		r.Sessions.Started, r.Sessions.Verified, r.Sessions.Lost, r.Sessions.LostWithDeadOwner, r.Sessions.Misrouted)
	fmt.Fprintf(w, "violations: %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  %8d ms  %-18s %s\n", v.T, v.Invariant, v.Detail)
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(w, "replay with --seed %d\n", r.Seed)
	}
}

func p50max(ms []int64) string {
	if len(ms) == 0 {
		return "-"
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return fmt.Sprintf("%d / %d", s[len(s)/2], s[len(s)-1])
}

// WritePlot draws the run's successful calls per second over time, with
// every fault as a dashed line (bench.WritePlot's format: .svg or .png).
func (r *Result) WritePlot(path string) error {
	const bucket = 500
	n := r.DurationMs/bucket + 1
	series := make([]bench.Bucket, n)
	for i := range series {
		series[i].TMs = int64(i) * bucket
	}
	for _, o := range r.Ops {
		if i := o.End / bucket; i >= 0 && i < n {
			if o.OK() {
				series[i].OK++
			} else {
				series[i].Failed++
			}
		}
	}
	events := make([]bench.Event, 0, len(r.Faults))
	for _, f := range r.Faults {
		events = append(events, bench.Event{TMs: f.T, Kind: f.Kind, Gateway: f.Target})
	}
	rep := &bench.Report{Label: "calls", BucketMs: bucket, Series: series}
	return bench.WritePlot(path, fmt.Sprintf("graftlb chaos, seed %d", r.Seed), []*bench.Report{rep}, events)
}
