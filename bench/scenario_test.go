package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// The scenarios at a small size: real gateway, proxy and HAProxy processes
// on loopback, started and killed by the scenario itself.

func runScenario(t *testing.T, sc Scenario) *ScenarioReport {
	t.Helper()
	sc.Binary = proctest.Binary(t)
	sc.Log = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second+sc.Load.Duration)
	defer cancel()
	rep, err := RunScenario(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = WriteScenarioTable(&b, rep)
	t.Logf("\n%s", b.String())
	return rep
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestScenarioScaleout(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "scaleout", Pools: []int{2, 1},
		Load: Config{Conns: 2, Concurrency: 8, Duration: 800 * time.Millisecond}})
	runs, _ := requireScenario(t, rep, "scaleout", false)
	if len(runs) != 2 || runs["gateways=1"] == nil || runs["gateways=2"] == nil {
		t.Fatalf("runs %v, want gateways=1 and gateways=2", keys(runs))
	}
	for label, r := range runs {
		if number(t, r, "ideal_ratio") <= 0 || number(t, r, "proxy_cpu_us_per_call") <= 0 {
			t.Fatalf("%s: ideal_ratio %v, proxy_cpu_us_per_call %v", label, r["ideal_ratio"], r["proxy_cpu_us_per_call"])
		}
	}
	two := object(t, runs["gateways=2"], "per_gateway")
	total := number(t, runs["gateways=2"], "calls_ok")
	for _, gw := range []string{"gw1", "gw2"} {
		if share := number(t, two, gw) / total; share < 0.3 {
			t.Fatalf("gateways=2: %s served %.0f%% of the calls", gw, 100*share)
		}
	}
}

func TestScenarioFailover(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "failover", Gateways: 3, At: time.Second,
		Load: Config{Conns: 4, Concurrency: 32, Duration: 2500 * time.Millisecond, SessionCalls: 4}})
	runs, events := requireScenario(t, rep, "failover", true)
	r := runs["graftlb"]
	if r == nil || len(events) == 0 || events[0].(map[string]any)["kind"] != "kill" || events[0].(map[string]any)["gateway"] != "gw2" {
		t.Fatalf("runs %v, events %v", keys(runs), events)
	}
	onTarget := number(t, r, "sessions_on_target")
	lostN := number(t, object(t, r, "sessions"), "lost")
	if onTarget == 0 || lostN == 0 || lostN > onTarget {
		t.Fatalf("sessions_on_target %v, lost %v: want 0 < lost <= on target", onTarget, lostN)
	}
	number(t, r, "recovery_ms")
	number(t, r, "proxy_cpu_us_per_call")
	if number(t, object(t, r, "errors"), "SESSION_LOST") == 0 {
		t.Fatalf("errors %v: no SESSION_LOST", r["errors"])
	}
}

func TestScenarioDrain(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "drain", Gateways: 3, At: time.Second, Discovery: DiscoveryGossip,
		Load: Config{Conns: 4, Concurrency: 16, Duration: 4 * time.Second, SessionCalls: 4}})
	runs, events := requireScenario(t, rep, "drain", true)
	r := runs["graftlb"]
	if r == nil {
		t.Fatalf("runs %v", keys(runs))
	}
	if f, l := number(t, r, "calls_failed"), number(t, object(t, r, "sessions"), "lost"); f != 0 || l != 0 {
		t.Fatalf("drain: %v calls failed (%v), %v sessions lost; want none", f, r["errors"], l)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	if strings.Join(kinds, ",") != "term,stop" {
		t.Fatalf("events %v: want gw2's term, then its stop once drained", events)
	}
	if number(t, r, "sessions_on_target") == 0 {
		t.Fatal("no session lived on the drained gateway: the drain proved nothing")
	}
	number(t, r, "recovery_ms")
}

// TestScenarioCompare runs compare with every peer. make test installs
// HAProxy and nginx (scripts/deps.sh), so a missing one fails the test
// rather than skipping its runs: a compare without its peers proves
// nothing.
func TestScenarioCompare(t *testing.T) {
	load := Config{Conns: 4, Concurrency: 8, Duration: 600 * time.Millisecond}
	t.Run("with peers", func(t *testing.T) {
		for name, find := range map[string]func(string) (string, error){"haproxy": FindHAProxy, "nginx": FindNginx} {
			if _, err := find(""); err != nil {
				t.Fatalf("%s: %v (scripts/deps.sh installs it; make test runs it)", name, err)
			}
		}
		rep := runScenario(t, Scenario{Name: "compare", Gateways: 2, Load: load})
		runs, _ := requireScenario(t, rep, "compare", false)
		want := []string{"direct", "graftlb", "haproxy", "nginx", "graftlb-ws", "haproxy-ws", "nginx-ws",
			"graftlb-open", "haproxy-open", "nginx-open", "graftlb-ws-open", "haproxy-ws-open", "nginx-ws-open"}
		if len(runs) != len(want) {
			t.Fatalf("runs %v, want %v", keys(runs), want)
		}
		if pg := object(t, runs["direct"], "per_gateway"); len(pg) != 1 || pg["gw1"] == nil {
			t.Fatalf("direct per_gateway %v", pg)
		}
		rates := map[string]float64{}
		for _, label := range want[1:] {
			r := runs[label]
			if r == nil {
				t.Fatalf("no %s run in %v", label, keys(runs))
			}
			open := strings.HasSuffix(label, "-open")
			for _, f := range []string{"proxy_cpu_us_per_call", "proxy_rss_mb", "proxy_vcpu_per_1k_calls_s", "proxy_mb_per_1k_calls_s"} {
				// CPU time comes in 10ms ticks: a short open loop at a low
				// rate may cost a peer less than one.
				if v := number(t, r, f); v < 0 || v == 0 && !(open && strings.Contains(f, "cpu")) {
					t.Fatalf("%s: %s %v", label, f, r[f])
				}
			}
			if pg := object(t, r, "per_gateway"); len(pg) != 2 {
				t.Fatalf("%s per_gateway %v: want both gateways", label, pg)
			}
			ws := strings.Contains(label, "-ws")
			if target, _ := r["target"].(string); strings.HasPrefix(target, "ws://") != ws {
				t.Fatalf("%s: target %s", label, target)
			}
			if r["mode"] != map[bool]string{true: "open", false: "closed"}[open] {
				t.Fatalf("%s: mode %v", label, r["mode"])
			}
			if !open {
				continue
			}
			// One offered rate per transport, half the slowest proxy's.
			rate := number(t, r, "rate")
			if prev, ok := rates[r["target"].(string)[:2]]; ok && prev != rate {
				t.Fatalf("%s: rate %v, another run of its transport had %v", label, rate, prev)
			}
			rates[r["target"].(string)[:2]] = rate
			slowest := number(t, runs[strings.TrimSuffix(label, "-open")], "throughput_per_s")
			for _, peer := range []string{"graftlb", "haproxy", "nginx"} {
				closed := peer
				if ws {
					closed += "-ws"
				}
				slowest = min(slowest, number(t, runs[closed], "throughput_per_s"))
			}
			if rate <= 0 || rate != math.Round(0.5*slowest) {
				t.Fatalf("%s: offered %v calls/s, want half the slowest closed-loop rate (%v)", label, rate, slowest)
			}
		}
		m := decodeFile(t, rep)
		ratios, _ := m["ratios"].([]any)
		pairs := map[string]bool{}
		for _, q := range ratios {
			qm := q.(map[string]any)
			pairs[qm["run"].(string)+"/"+qm["peer"].(string)] = true
			for _, f := range []string{"throughput", "p99", "rss"} {
				if number(t, qm, f) <= 0 {
					t.Fatalf("ratio %v: %s", qm, f)
				}
			}
			if !strings.HasSuffix(qm["run"].(string), "-open") && number(t, qm, "cpu_per_call") <= 0 {
				t.Fatalf("ratio %v: cpu_per_call", qm)
			}
		}
		for _, pair := range []string{"graftlb/haproxy", "graftlb/nginx", "graftlb-ws/haproxy-ws", "graftlb-ws/nginx-ws",
			"graftlb-open/haproxy-open", "graftlb-open/nginx-open", "graftlb-ws-open/haproxy-ws-open", "graftlb-ws-open/nginx-ws-open"} {
			if !pairs[pair] {
				t.Fatalf("ratios %v: no %s", pairs, pair)
			}
		}
		if len(pairs) != 8 {
			t.Fatalf("ratios %v: want 8 pairs, same transport and loop only", pairs)
		}
	})
	t.Run("peers missing", func(t *testing.T) {
		load := load
		load.Duration = 300 * time.Millisecond
		load.Rate = 500
		rep := runScenario(t, Scenario{Name: "compare", Gateways: 2, Load: load,
			HAProxy: "/nonexistent/haproxy", Nginx: "/nonexistent/nginx"})
		runs, _ := requireScenario(t, rep, "compare", false)
		notes := strings.Join(rep.Notes, "\n")
		if len(runs) != 5 || runs["graftlb-ws-open"] == nil || !strings.Contains(notes, "haproxy missing") || !strings.Contains(notes, "nginx missing") {
			t.Fatalf("runs %v, notes %v: want direct and graftlb's four, and a note for each peer", keys(runs), rep.Notes)
		}
		// --rate sets the open loop's offered rate; the closed runs stay closed.
		if r := runs["graftlb-open"]; number(t, r, "rate") != 500 || runs["graftlb"]["mode"] != "closed" {
			t.Fatalf("graftlb-open rate %v, graftlb mode %v", r["rate"], runs["graftlb"]["mode"])
		}
		if len(rep.Ratios) != 0 {
			t.Fatalf("ratios %v without peers", rep.Ratios)
		}
	})
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestScenarioRolling restarts each of 3 gateways in turn while carts that
// sit idle between calls (longer than a drain's quiet period) are in
// progress: the drained gateways hand their carts over, and nothing is
// lost, misrouted or failed.
func TestScenarioRolling(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "rolling", Gateways: 3, At: 1500 * time.Millisecond,
		Load: Config{Conns: 4, Concurrency: 24, Duration: 10 * time.Second, SessionCalls: 3, SessionPause: 400 * time.Millisecond}})
	runs, events := requireScenario(t, rep, "rolling", true)
	r := runs["graftlb"]
	if r == nil {
		t.Fatalf("runs %v", keys(runs))
	}
	s := object(t, r, "sessions")
	if f, l, m := number(t, r, "calls_failed"), number(t, s, "lost"), number(t, s, "misrouted"); f != 0 || l != 0 || m != 0 {
		t.Fatalf("rolling: %v calls failed (%v), %v sessions lost, %v misrouted; want none", f, r["errors"], l, m)
	}
	var got []string
	for _, e := range events {
		ev := e.(map[string]any)
		got = append(got, ev["kind"].(string)+" "+ev["gateway"].(string))
	}
	want := "term gw1,stop gw1,join gw1,term gw2,stop gw2,join gw2,term gw3,stop gw3,join gw3"
	if strings.Join(got, ",") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if moved := number(t, r, "sessions_moved"); moved == 0 {
		t.Fatal("no session moved: the carts were not idle on the drained gateways")
	}
	drains, _ := r["drains"].([]any)
	if len(drains) != 3 {
		t.Fatalf("drains %v, want one per gateway", r["drains"])
	}
	for _, d := range drains {
		dm := d.(map[string]any)
		if ms := dm["ms"].(float64); ms <= 0 || ms > 5000 || dm["sessions_lost"].(float64) != 0 {
			t.Fatalf("drain %v: want under 5s (not the drain grace), nothing lost", dm)
		}
	}
	if number(t, s, "verified") == 0 {
		t.Fatal("no session verified")
	}
}

func TestScenarioTransport(t *testing.T) {
	rep := runScenario(t, Scenario{Name: "transport", DurableCalls: 40,
		Load: Config{Conns: 2, Concurrency: 8, Duration: 800 * time.Millisecond}})
	runs, _ := requireScenario(t, rep, "transport", false)
	for _, label := range []string{"direct", "nats-queue", "nats-durable"} {
		r := runs[label]
		if r == nil {
			t.Fatalf("runs %v, want %s", keys(runs), label)
		}
		if number(t, r, "calls_ok") == 0 || number(t, r, "calls_failed") != 0 || number(t, r, "proxy_cpu_us_per_call") <= 0 {
			t.Fatalf("%s: %v", label, r)
		}
		if label != "direct" && number(t, r, "nats_cpu_us_per_call") <= 0 {
			t.Fatalf("%s: no NATS CPU per call: %v", label, r)
		}
	}
	// Over queue, the calls spread over every gateway too.
	if pg := object(t, runs["nats-queue"], "per_gateway"); len(pg) != 3 {
		t.Fatalf("nats-queue per_gateway %v, want 3 gateways", pg)
	}
	d := rep.Durable
	if d == nil || d.Accepted != 40 || d.Executed != 40 || d.StartedOnKilled == 0 || d.MaxStartsIdempotent > 2 || d.MaxStartsOther > 1 {
		t.Fatalf("durable %+v", d)
	}
	if len(rep.Violations) != 0 {
		t.Fatalf("violations: %v", rep.Violations)
	}
}
