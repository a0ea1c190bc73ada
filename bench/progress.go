package bench

import (
	"fmt"
	"time"
)

// progress rewrites one line on cfg.Progress every second until every
// user has finished: elapsed time, throughput over the last second,
// calls so far, errors, p99 so far and time left. It erases the line at
// the end, so the table that follows starts clean.
func (r *Run) progress() {
	defer r.helpers.Done()
	w := r.cfg.Progress
	t := time.NewTicker(time.Second)
	defer t.Stop()
	label := r.cfg.Label
	if label != "" {
		label += "  "
	}
	prevOK, prevT := int64(0), r.start
	for {
		select {
		case <-r.done:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-t.C:
			p := r.env.rec.progress()
			rate := float64(p.ok-prevOK) / now.Sub(prevT).Seconds()
			prevOK, prevT = p.ok, now
			left := "finishing sessions"
			if d := r.end.Sub(now); d > 0 && !r.stopped() {
				left = d.Round(time.Second).String() + " left"
			}
			fmt.Fprintf(w, "\r\033[K%s%5.1fs  %9.0f calls/s  %d ok  %d errors  p99 %s  %s",
				label, now.Sub(r.start).Seconds(), rate, p.ok, p.failed, fmtUs(p.p99Us), left)
		}
	}
}

// fmtUs formats microseconds for people: 850µs, 1.23ms, 1.23s.
func fmtUs(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1000_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}
