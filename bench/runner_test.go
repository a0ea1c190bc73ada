package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r.Wait()
}

// TestWorkloads runs each workload in each loop against an embedded
// gateway over TCP and WebSocket, and checks the report's contract.
func TestWorkloads(t *testing.T) {
	g := testgw.Start(t, "gw1", nil)
	tests := []struct {
		workload Workload
		binding  string
		rate     float64
	}{
		{Stateless, "tcp", 0},
		{Stateful, "tcp", 0},
		{Mixed, "ws", 0},
		{Sleep, "tcp", 0},
		{Stateless, "ws", 400},
		{Mixed, "tcp", 400},
	}
	for _, tt := range tests {
		t.Run(string(tt.workload)+"/"+tt.binding+"/"+map[bool]string{true: "open", false: "closed"}[tt.rate > 0], func(t *testing.T) {
			rep := run(t, Config{Target: testgw.Targets(g)[tt.binding], Workload: tt.workload, Conns: 2, Concurrency: 8,
				Duration: 400 * time.Millisecond, Rate: tt.rate, SessionCalls: 3, SleepMin: time.Millisecond, SleepMax: 3 * time.Millisecond})
			requireReport(t, decodeFile(t, rep), tt.workload.hasSessions())
			if rep.CallsOK == 0 || rep.CallsFailed != 0 {
				t.Fatalf("calls: %d ok, %d failed %v", rep.CallsOK, rep.CallsFailed, rep.Errors)
			}
			if rep.PerGateway["gw1"] == 0 || len(rep.PerGateway) != 1 {
				t.Fatalf("per_gateway = %v, want only gw1", rep.PerGateway)
			}
			if tt.workload.hasSessions() && rep.Sessions.Verified != rep.Sessions.Started {
				t.Fatalf("sessions %+v: want all verified", *rep.Sessions)
			}
			if tt.rate > 0 {
				// 400/s for 400ms is 160 calls due; mixed sessions add their
				// read-backs at the end.
				if rep.CallsOK+rep.CallsUnsent < 160 || rep.CallsOK < 100 {
					t.Fatalf("open loop at 400/s for 400ms: %d ok, %d unsent", rep.CallsOK, rep.CallsUnsent)
				}
			}
			if len(rep.Series) < 2 {
				t.Fatalf("series has %d buckets", len(rep.Series))
			}
		})
	}
}

// TestOpenLoopCountsTheWait overloads two users that each take 40ms per
// call with 100 calls/s: a closed loop would report ~40ms, the open loop
// reports the queueing the schedule implies (coordinated omission
// avoided) and counts the calls it could not send.
func TestOpenLoopCountsTheWait(t *testing.T) {
	g := testgw.Start(t, "gw1", nil)
	const work = 40 * time.Millisecond
	cfg := Config{Target: testgw.Targets(g)["tcp"], Workload: Sleep, Conns: 1, Concurrency: 2,
		Duration: 600 * time.Millisecond, SleepMin: work, SleepMax: work}
	closed := run(t, cfg)
	cfg.Rate = 100
	open := run(t, cfg)
	if p99 := time.Duration(closed.LatencyUs.P99) * time.Microsecond; p99 > 10*work {
		t.Fatalf("closed loop p99 %v; want about %v", p99, work)
	}
	// Two users serve 50 calls/s of the 100 due: by the end the backlog is
	// ~300ms deep, and calls sent in the grace period wait longer still.
	if p90 := time.Duration(open.LatencyUs.P90) * time.Microsecond; p90 < 5*work {
		t.Fatalf("open loop p90 %v: the wait for overdue calls is not measured", p90)
	}
	if open.CallsOK+open.CallsFailed+open.CallsUnsent != 60 {
		t.Fatalf("open loop: %d sent + %d unsent, want the 60 due", open.CallsOK, open.CallsUnsent)
	}
}

// TestSessionOutcomes makes a gateway lie: it loses every cart at Total, or
// shows an extra item in Items. The bench must count those sessions lost
// or misrouted, and Check must flag the misrouted ones.
func TestSessionOutcomes(t *testing.T) {
	tests := []struct {
		name                  string
		lie                   gateway.Interceptor
		wantLost, wantMisrout bool
	}{
		{"lost at Total", func(ctx context.Context, c *gateway.Call, next gateway.Handler) (any, error) {
			if c.Info().Target.Method == "Total" {
				return nil, protocol.Errorf(protocol.CodeSessionLost, "gone")
			}
			return next(ctx, c)
		}, true, false},
		{"extra item", func(ctx context.Context, c *gateway.Call, next gateway.Handler) (any, error) {
			res, err := next(ctx, c)
			if r, ok := res.(cart.ItemsResult); ok {
				r.Items = append(r.Items, "someone else's")
				return r, err
			}
			return res, err
		}, false, true},
		{"another gateway answers", func(ctx context.Context, c *gateway.Call, next gateway.Handler) (any, error) {
			res, err := next(ctx, c)
			if r, ok := res.(cart.TotalResult); ok {
				r.Gateway = "gw9"
				return r, err
			}
			return res, err
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testgw.Start(t, "gw1", func(c *gateway.Config) { c.Interceptors = []gateway.Interceptor{tt.lie} })
			rep := run(t, Config{Target: testgw.Targets(g)["tcp"], Workload: Stateful, Conns: 1, Concurrency: 4,
				Duration: 200 * time.Millisecond, SessionCalls: 2})
			s := rep.Sessions
			if s.Started == 0 || s.Started != s.Verified+s.Lost+s.Misrouted || s.Verified != 0 {
				t.Fatalf("sessions %+v", *s)
			}
			if (s.Lost == s.Started) != tt.wantLost || (s.Misrouted == s.Started) != tt.wantMisrout {
				t.Fatalf("sessions %+v: want lost %v, misrouted %v", *s, tt.wantLost, tt.wantMisrout)
			}
			if got := len(rep.Check()) > 0; got != tt.wantMisrout {
				t.Fatalf("Check() = %v", rep.Check())
			}
		})
	}
}

// TestStopEarly stops a run long before its duration: the report says
// interrupted and every session still ends before it.
func TestStopEarly(t *testing.T) {
	g := testgw.Start(t, "gw1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, Config{Target: testgw.Targets(g)["tcp"], Workload: Mixed, Conns: 2, Concurrency: 8, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	done := make(chan *Report, 1)
	go func() { done <- r.Wait() }()
	select {
	case rep := <-done:
		if !rep.Interrupted || rep.DurationS > 10 {
			t.Fatalf("interrupted %v after %.1fs", rep.Interrupted, rep.DurationS)
		}
		requireReport(t, decodeFile(t, rep), true)
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not stop")
	}
}

// TestPlotAndTable renders a report with an event in each format the
// command documents.
func TestPlotAndTable(t *testing.T) {
	g := testgw.Start(t, "gw1", nil)
	r, err := Start(context.Background(), Config{Target: testgw.Targets(g)["tcp"], Workload: Mixed, Conns: 1,
		Concurrency: 4, Duration: 300 * time.Millisecond, Bucket: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	r.Mark(EventTerm, "gw1")
	rep := r.Wait()
	if rep.SessionsOnTarget == nil || *rep.SessionsOnTarget == 0 || rep.RecoveryMs == nil {
		t.Fatalf("term event: sessions_on_target %v, recovery_ms %v", rep.SessionsOnTarget, rep.RecoveryMs)
	}
	for _, ext := range []string{"svg", "png"} {
		if err := WritePlot(filepath.Join(t.TempDir(), "plot."+ext), "test", []*Report{rep}, rep.events); err != nil {
			t.Fatal(err)
		}
	}
	if err := WritePlot(filepath.Join(t.TempDir(), "plot.txt"), "test", []*Report{rep}, nil); err == nil {
		t.Fatal("a plot to .txt did not fail")
	}
	var b strings.Builder
	if err := WriteTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	sr := &ScenarioReport{Scenario: "test", Runs: []*Report{rep}, Events: rep.events}
	if err := WriteScenarioTable(&b, sr); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}
