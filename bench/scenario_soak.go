package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Defaults of the soak scenario.
const (
	DefaultSoakGateways    = 3
	DefaultSoakRate        = 100 // calls/s of the mixed load: the machine is shared
	DefaultSoakMaxSessions = 1000
	DefaultSoakSessionIdle = 30 * time.Second
	DefaultSampleEvery     = 10 * time.Second
)

// SoakReport is the soak's part of the scenario report: the samples of
// every process, the judgement of each, and what the churn did.
type SoakReport struct {
	// Verdict is bounded when every check of every process is, growing
	// when one is, inconclusive otherwise (the table never filled, too
	// few samples after it did).
	Verdict string `json:"verdict"`
	// Criterion says how a series is judged (see Growth).
	Criterion     string  `json:"criterion"`
	SampleEveryMs int64   `json:"sample_every_ms"`
	MaxSessions   int     `json:"max_sessions"`
	SessionIdleMs int64   `json:"session_idle_ms"`
	SessionRate   float64 `json:"churn_sessions_per_s"`
	// FullMs is when the table first refused a session (null: never);
	// WindowFromMs is where the checks start (soakWindow).
	FullMs       *int64        `json:"full_ms"`
	WindowFromMs int64         `json:"window_from_ms"`
	Processes    []*ProcSeries `json:"processes"`
	Workload     SoakWorkload  `json:"workload"`
}

// soakCriterion is SoakReport.Criterion.
const soakCriterion = "window: from one session idle period after the table first refused a session for being full (and no earlier than a third of the soak) to the end; " +
	"split in three by time, M1..M3 the thirds' medians, growth = Theil-Sen slope × window length, tolerance = max(rel × M1, abs); " +
	"growing when growth > tolerance and M3 - M2 > tolerance/3; under 6 samples in the window: inconclusive"

// soakWindow returns where the judged window starts (ms): one session
// idle period after the table filled, when every session in it came after
// it was full and the gateways hold a steady number too, and no earlier
// than a third of the soak. The Go runtime of a process that allocates
// little collects about once a minute, and its RSS climbs to the peak of
// that cycle's heap before it levels off (the scavenger returns memory
// slowly): a window that starts in the first cycles would take that for
// growth.
func soakWindow(fullMs int64, idle, duration time.Duration) int64 {
	return max(fullMs+idle.Milliseconds(), (duration / 3).Milliseconds())
}

// soakTolerances are the tolerances of the judged metrics.
var soakTolerances = []struct {
	metric string
	tol    Tolerance
}{{MetricRSS, DefaultRSSTolerance}, {MetricGoroutines, DefaultGoroutinesTolerance}, {MetricFDs, DefaultFDsTolerance}}

// minSoakDuration is the shortest soak that can be judged: the table fills
// in about one idle period, the window starts one later and needs
// minWindowSamples samples.
func minSoakDuration(idle, every time.Duration) time.Duration {
	return max(2*idle+minWindowSamples*every, 3*minWindowSamples*every/2)
}

// soak runs graftlb in front of a pool for Load.Duration under a mixed
// load that fills the proxy's session table (--max-sessions
// Scenario.MaxSessions) and keeps it full, and samples every process
// (proxy and gateways) every Scenario.SampleEvery: RSS, goroutines, open
// fds, heap in use and sessions held. It fails (a violation) when a
// process's RSS, goroutines or fds grow without bound once the table is
// full (Growth says the criterion), when a process exits, when the table
// never fills, and when a call sees what it must not (misrouted, a wrong
// result, a session lost: no gateway dies here).
//
// The load:
//   - the mixed workload of Load (open loop at DefaultSoakRate calls/s
//     unless --rate says otherwise): stateless calls and verified carts;
//   - soakChurners users that open short-lived connections, TCP and
//     WebSocket in turn, each creating soakCartsPerConn carts in sessions
//     of their own (one in soakReleaseEvery released, the others
//     forgotten) at soakFillFactor × MaxSessions / SessionIdle new sessions
//     a second in all, then a round of events and callbacks and a few
//     ONEWAY calls, and closing at once;
//   - a long-lived connection sending ONEWAY calls, and one with a round
//     of events and callbacks every second;
//   - two slow readers (TCP, WebSocket) that make the proxy queue PONGs
//     until it cuts them off, and dial again.
//
// Forgotten carts stay in the table until --session-idle passes, which
// the soak sets to Scenario.SessionIdle, as the gateways' --session-ttl:
// the table is full once it holds MaxSessions sessions, and from then on
// new sessions are refused with OVERLOADED (counted, not failures; the
// mixed load's carts are refused too, and may end lost after their
// retries) while idle ones leave.
func soak(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, sc.Discovery)
	if err != nil {
		return err
	}
	defer cl.close()
	idle := sc.SessionIdle.String()
	if err := cl.startGateways(ctx, sc.Gateways, "--session-ttl", idle); err != nil {
		return err
	}
	proxy, err := cl.startProxy(ctx, cl.gateways, "--ws", "127.0.0.1:0",
		"--max-sessions", strconv.Itoa(sc.MaxSessions), "--session-idle", idle)
	if err != nil {
		return err
	}
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Mixed
	}
	if load.Rate == 0 {
		load.Rate = DefaultSoakRate
	}
	load.Target = "tcp://" + proxy.Addr.TCP
	load.Label = "graftlb"
	rate := soakFillFactor * float64(sc.MaxSessions) / sc.SessionIdle.Seconds()
	sr := &SoakReport{Criterion: soakCriterion, SampleEveryMs: sc.SampleEvery.Milliseconds(), MaxSessions: sc.MaxSessions,
		SessionIdleMs: sc.SessionIdle.Milliseconds(), SessionRate: rate}
	var full *int64 // ms: the first refusal by a full table
	r, err := runLoad(ctx, sc, load, proxy, func(r *Run) {
		smp := newSampler(r.start, sc.SampleEvery, proxy, cl.gateways)
		go smp.run()
		wl := startSoakLoad(proxy, rate)
		select {
		case <-wl.firstFull:
			ms := r.Elapsed().Milliseconds()
			full = &ms
			fmt.Fprintf(sc.Log, "soak: the session table is full at %.1fs\n", float64(ms)/1e3)
			sleepUntil(ctx, r, load.Duration)
		case <-r.stop:
		case <-ctx.Done():
		}
		sr.Processes = smp.halt() // before the churn stops: its last sample is under load
		sr.Workload = wl.halt()
	})
	if err != nil {
		return err
	}
	rep.Runs = append(rep.Runs, r)
	rep.Events = append(rep.Events, r.events...)
	rep.Soak = sr
	rep.Notes = append(rep.Notes, fmt.Sprintf("%s pool of %d gateways; proxy --max-sessions %d, --session-idle and gateways' --session-ttl %v; "+
		"churn of %.1f new sessions/s; samples every %v; other engineers' processes share the machine's cores",
		sc.Discovery, sc.Gateways, sc.MaxSessions, sc.SessionIdle, rate, sc.SampleEvery))
	rep.Violations = append(rep.Violations, judgeSoak(sr, full, sc.SessionIdle, load.Duration)...)
	rep.Violations = append(rep.Violations, soakCallViolations(r, sr.Workload)...)
	for _, p := range cl.procs {
		if p.Exited() {
			rep.Violations = append(rep.Violations, fmt.Sprintf("soak: %s exited during the soak (code %d); stderr:\n%s", p.Name, p.ExitCode(), p.StderrTail(10)))
		}
	}
	return nil
}

// judgeSoak judges every process's series over the window (soakWindow),
// sets the verdict and returns the violations.
func judgeSoak(sr *SoakReport, full *int64, idle, duration time.Duration) []string {
	var v []string
	if full == nil {
		sr.Verdict = VerdictInconclusive
		var most float64
		for _, p := range sr.Processes {
			for _, s := range p.Samples {
				if p.Role == "proxy" && s.Sessions != nil {
					most = max(most, *s.Sessions)
				}
			}
		}
		return []string{fmt.Sprintf("soak: the session table never filled (at most %.0f of %d sessions sampled): nothing to judge", most, sr.MaxSessions)}
	}
	sr.FullMs = full
	sr.WindowFromMs = soakWindow(*full, idle, duration)
	sr.Verdict = VerdictBounded
	inconclusive := false
	for _, p := range sr.Processes {
		if len(p.Samples) == 0 {
			v = append(v, fmt.Sprintf("soak: %s: no samples", p.Name))
			inconclusive = true
			continue
		}
		p.Checks = nil
		for _, m := range soakTolerances {
			g := judgeGrowth(m.metric, p.points(m.metric), sr.WindowFromMs, m.tol)
			p.Checks = append(p.Checks, g)
			switch g.Verdict {
			case VerdictGrowing:
				sr.Verdict = VerdictGrowing
				v = append(v, fmt.Sprintf("soak: %s: %s", p.Name, g))
			case VerdictInconclusive:
				inconclusive = true
				v = append(v, fmt.Sprintf("soak: %s: %s", p.Name, g))
			}
		}
	}
	if inconclusive && sr.Verdict == VerdictBounded {
		sr.Verdict = VerdictInconclusive
	}
	return v
}

// soakCallViolations are the calls that saw what they must not: a
// misrouted cart, a wrong result, a session lost (no gateway dies in a
// soak), missing events, a slow reader the proxy never cut off. Timeouts
// and refusals are reported, not judged: the machine is shared.
func soakCallViolations(r *Report, wl SoakWorkload) []string {
	var v []string
	for _, code := range []string{codeMisrouted, codeBadResult, "SESSION_LOST", "EVENTS_MISSING", "SLOW_READER_STUCK"} {
		if n := r.Errors[code]; n > 0 {
			v = append(v, fmt.Sprintf("soak: mixed load: %d calls %s (first: %s)", n, code, r.ErrorSamples[code]))
		}
		if n := wl.Failures[code]; n > 0 {
			v = append(v, fmt.Sprintf("soak: churn: %d %s (first: %s)", n, code, wl.FailureSamples[code]))
		}
	}
	return v
}
