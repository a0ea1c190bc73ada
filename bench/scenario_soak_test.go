package bench

import (
	"testing"
	"time"
)

// TestScenarioSoak runs the soak for two minutes, sampling every 5s, with
// a table of 500 sessions that idle out after 15s: the table fills, every
// process (the proxy and 3 gateways) is sampled all along, and none grows.
func TestScenarioSoak(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "soak", SampleEvery: 5 * time.Second, MaxSessions: 500, SessionIdle: 15 * time.Second,
		Load: Config{Conns: 4, Concurrency: 16, Duration: 2 * time.Minute, SessionCalls: 4}})
	runs, _ := requireScenario(t, rep, "soak", true)
	if runs["graftlb"] == nil {
		t.Fatalf("runs %v", keys(runs))
	}
	m := decodeFile(t, rep)
	soak := object(t, m, "soak")
	if soak["verdict"] != VerdictBounded {
		t.Fatalf("verdict %v, want bounded", soak["verdict"])
	}
	sr := rep.Soak
	if sr.FullMs == nil || sr.WindowFromMs < *sr.FullMs+15000 || sr.WindowFromMs < 40000 {
		t.Fatalf("table full at %v ms, window from %d ms: want a full table, and the window one idle period later and after a third",
			sr.FullMs, sr.WindowFromMs)
	}
	roles := map[string]int{}
	for _, p := range sr.Processes {
		roles[p.Role]++
		// a sample at once, then every 5s until the end: 25
		if n := len(p.Samples); n < 22 {
			t.Fatalf("%s: %d samples over 2 minutes every 5s", p.Name, n)
		}
		for _, s := range p.Samples {
			if s.RSS == nil || *s.RSS <= 0 || s.FDs == nil || *s.FDs <= 0 || s.Goroutines == nil || *s.Goroutines <= 0 || s.Sessions == nil {
				t.Fatalf("%s: sample at %dms lacks RSS, fds, goroutines or sessions: %+v (errors %d, first: %s)",
					p.Name, s.TMs, s, p.Errors, p.FirstError)
			}
		}
		if len(p.Checks) != 3 {
			t.Fatalf("%s: checks %v, want rss, goroutines and fds", p.Name, p.Checks)
		}
		for _, g := range p.Checks {
			if g.Verdict != VerdictBounded || g.Samples < minWindowSamples {
				t.Fatalf("%s: %s", p.Name, g)
			}
		}
	}
	if roles["proxy"] != 1 || roles["gateway"] != 3 {
		t.Fatalf("processes by role %v, want the proxy and 3 gateways", roles)
	}
	var most float64
	for _, s := range sr.Processes[0].Samples {
		most = max(most, *s.Sessions)
	}
	if most < 500 {
		t.Fatalf("the proxy's table held at most %v sessions, want its 500", most)
	}
	wl := sr.Workload
	if wl.ConnsOpened == 0 || wl.CartsForgotten == 0 || wl.CartsReleased == 0 || wl.RefusedTableFull == 0 || wl.Events == 0 ||
		wl.Callbacks == 0 || wl.Oneway == 0 || wl.SlowConns < 2 || wl.SlowBytesRead == 0 {
		t.Fatalf("the churn did not do all it should: %+v", wl)
	}
}
