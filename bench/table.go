package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes one run's report as an aligned two-column table.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	if r.Label != "" {
		row("run", "%s", r.Label)
	}
	load := fmt.Sprintf("%s workload, %s loop, %d users on %d connections", r.Workload, r.Mode, r.Concurrency, r.Conns)
	if r.Rate > 0 {
		load += fmt.Sprintf(", %.0f calls/s due", r.Rate)
	}
	row("target", "%s", r.Target)
	row("load", "%s", load)
	row("duration", "%.2fs%s", r.DurationS, map[bool]string{true: " (interrupted)"}[r.Interrupted])
	row("calls", "%d ok, %d failed%s", r.CallsOK, r.CallsFailed, unsent(r))
	row("errors", "%s", errorsString(r.Errors))
	for _, code := range slices.Sorted(maps.Keys(r.ErrorSamples)) {
		row("", "first %s: %s", code, r.ErrorSamples[code])
	}
	row("throughput", "%.1f calls/s", r.ThroughputPerS)
	l := r.LatencyUs
	row("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", fmtUs(l.P50), fmtUs(l.P90), fmtUs(l.P99), fmtUs(l.P999), fmtUs(l.Max))
	row("per gateway", "%s", shares(r.PerGateway, true))
	if s := r.Sessions; s != nil {
		row("sessions", "%d started, %d verified, %d lost, %d misrouted", s.Started, s.Verified, s.Lost, s.Misrouted)
	}
	if r.SessionsOnTarget != nil {
		row("on target", "%d sessions", *r.SessionsOnTarget)
	}
	if r.RecoveryMs != nil {
		row("recovery", "%s", recoveryString(r))
	}
	if r.ProxyCPUUsPerCall != nil {
		row("proxy CPU", "%.1f µs/call", *r.ProxyCPUUsPerCall)
	}
	if r.ProxyRSSMB != nil {
		row("proxy RSS", "%.1f MB", *r.ProxyRSSMB)
	}
	if r.ProxyVCPUPer1k != nil || r.ProxyMBPer1k != nil {
		row("per 1k calls/s", "%s vCPU, %s MB", optFloat(r.ProxyVCPUPer1k, "%.3f"), optFloat(r.ProxyMBPer1k, "%.1f"))
	}
	return tw.Flush()
}

// WriteScenarioTable writes a scenario's runs side by side, one row each,
// then its events, notes and violations.
func WriteScenarioTable(w io.Writer, sr *ScenarioReport) error {
	fmt.Fprintf(w, "scenario %s\n\n", sr.Scenario)
	has := func(f func(*Report) bool) bool { return slices.ContainsFunc(sr.Runs, f) }
	sess := has(func(r *Report) bool { return r.Sessions != nil })
	cpu := has(func(r *Report) bool { return r.ProxyCPUUsPerCall != nil })
	ideal := has(func(r *Report) bool { return r.IdealRatio != nil })
	target := has(func(r *Report) bool { return r.SessionsOnTarget != nil })
	moved := has(func(r *Report) bool { return r.SessionsMoved != nil })
	rss := has(func(r *Report) bool { return r.ProxyRSSMB != nil })

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"run", "calls/s", "p50", "p99", "ok", "failed", "errors"}
	if ideal {
		head = append(head, "ideal")
	}
	if cpu {
		head = append(head, "proxy µs/call")
	}
	if rss {
		head = append(head, "RSS MB", "vCPU/1k", "MB/1k")
	}
	if sess {
		head = append(head, "sessions v/l/m")
	}
	if target {
		head = append(head, "on target", "recovery")
	}
	if moved {
		head = append(head, "moved")
	}
	head = append(head, "per gateway")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range sr.Runs {
		cols := []string{r.name(), fmt.Sprintf("%.0f", r.ThroughputPerS), fmtUs(r.LatencyUs.P50), fmtUs(r.LatencyUs.P99),
			fmt.Sprint(r.CallsOK), fmt.Sprint(r.CallsFailed), errorsString(r.Errors)}
		if ideal {
			cols = append(cols, optFloat(r.IdealRatio, "%.2f"))
		}
		if cpu {
			cols = append(cols, optFloat(r.ProxyCPUUsPerCall, "%.1f"))
		}
		if rss {
			cols = append(cols, optFloat(r.ProxyRSSMB, "%.1f"), optFloat(r.ProxyVCPUPer1k, "%.4f"), optFloat(r.ProxyMBPer1k, "%.2f"))
		}
		if sess {
			s := "-"
			if r.Sessions != nil {
				s = fmt.Sprintf("%d/%d/%d of %d", r.Sessions.Verified, r.Sessions.Lost, r.Sessions.Misrouted, r.Sessions.Started)
			}
			cols = append(cols, s)
		}
		if target {
			on := "-"
			if r.SessionsOnTarget != nil {
				on = fmt.Sprint(*r.SessionsOnTarget)
			}
			cols = append(cols, on, recoveryString(r))
		}
		if moved {
			cols = append(cols, optInt(r.SessionsMoved))
		}
		cols = append(cols, shares(r.PerGateway, false))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range sr.Runs {
		for _, code := range slices.Sorted(maps.Keys(r.ErrorSamples)) {
			fmt.Fprintf(w, "%s: first %s: %s\n", r.name(), code, r.ErrorSamples[code])
		}
	}
	if len(sr.Ratios) > 0 {
		fmt.Fprintln(w, "\ngraftlb over each peer, same run (calls/s: above 1 is better; p99, CPU/call, RSS: below 1 is better):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "graftlb run\tpeer run\tcalls/s\tp99\tCPU/call\tRSS")
		for _, q := range sr.Ratios {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%s\t%s\n", q.Run, q.Peer, q.Throughput, q.P99,
				optFloat(q.CPUPerCall, "%.2f"), optFloat(q.RSS, "%.2f"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	for _, e := range sr.Events {
		fmt.Fprintf(w, "event: %s %s at %.2fs\n", e.Kind, e.Gateway, float64(e.TMs)/1e3)
	}
	for _, r := range sr.Runs {
		for _, d := range r.Drains {
			fmt.Fprintf(w, "drain: %s took %.0fms, moved %d sessions, lost %d\n", d.Gateway, d.Ms, d.SessionsMoved, d.SessionsLost)
		}
	}
	if sr.Soak != nil {
		if err := writeSoakTable(w, sr.Soak); err != nil {
			return err
		}
	}
	for _, n := range sr.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, v := range sr.Violations {
		fmt.Fprintf(w, "VIOLATION: %s\n", v)
	}
	return nil
}

func unsent(r *Report) string {
	if r.CallsUnsent == 0 {
		return ""
	}
	return fmt.Sprintf(", %d due but never sent (the users could not keep up)", r.CallsUnsent)
}

func errorsString(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// shares formats per-gateway counts as percentages (with the counts).
func shares(m map[string]int64, counts bool) string {
	var total int64
	for _, v := range m {
		total += v
	}
	if total == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := fmt.Sprintf("%s %.1f%%", k, 100*float64(m[k])/float64(total))
		if counts {
			p += fmt.Sprintf(" (%d)", m[k])
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "  ")
}

func recoveryString(r *Report) string {
	if r.RecoveryMs == nil {
		return "-"
	}
	s := fmt.Sprintf("%.0fms", *r.RecoveryMs)
	if r.Recovered != nil && !*r.Recovered {
		s = ">" + s + " (not recovered)"
	}
	return s
}

func optInt(v *int64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

func optFloat(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}
