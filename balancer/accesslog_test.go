package balancer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAccessLogAndTraceIDs: with an access log and --trace-ids, each call
// gets one line naming its gateway, target, kind, code and duration, and
// the trace id the gateway saw: the client's own traceparent forwarded
// unchanged, or the one the proxy added.
func TestAccessLogAndTraceIDs(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // trace the gateway saw, by order id
	gs := startGateways(t, 1, func(c *gateway.Config) {
		c.Interceptors = append(c.Interceptors, func(ctx context.Context, call *gateway.Call, next gateway.Handler) (any, error) {
			var args []string
			_ = protocol.Unmarshal(call.Args(), &args)
			mu.Lock()
			if len(args) == 1 {
				seen[args[0]] = call.Info().Trace
			}
			mu.Unlock()
			return next(ctx, call)
		})
	})
	var buf syncBuffer
	log := zerolog.New(&buf)
	p := startProxy(t, gs, func(c *Config) { c.AccessLog, c.TraceIDs = &log, true })
	c := dialProxy(t, proxyTargets(p)["tcp"])
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	target := protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"}
	if _, err := c.Session().Do(testCtx(t), client.Request{Target: target, Args: []any{"with"}, Stateless: true, Trace: tp}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session().Do(testCtx(t), client.Request{Target: target, Args: []any{"without"}, Stateless: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.NoSuch"); err == nil {
		t.Fatal("NoSuch succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["with"] != tp {
		t.Errorf("gateway saw traceparent %q, want the client's %q unchanged", seen["with"], tp)
	}
	added := seen["without"]
	if traceID([]byte(added)) == "" {
		t.Fatalf("gateway saw traceparent %q for a call without one, want one the proxy added", added)
	}
	lines := buf.lines(t)
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3: %v", len(lines), lines)
	}
	want := []struct{ trace, code string }{{tp[3:35], "OK"}, {added[3:35], "OK"}, {"", "NOT_FOUND"}}
	for i, l := range lines {
		if l["gateway"] != "gw1" || l["kind"] != "stateless" || l["code"] != want[i].code || l["message"] != "call" {
			t.Errorf("line %d: %v", i, l)
		}
		if _, ok := l["duration_ms"].(float64); !ok {
			t.Errorf("line %d has no duration: %v", i, l)
		}
		if got, _ := l["trace_id"].(string); got != want[i].trace && want[i].trace != "" {
			t.Errorf("line %d: trace_id %q, want %q", i, got, want[i].trace)
		}
	}
	if lines[0]["target"] != "orders@1.Orders.GetOrder" {
		t.Errorf("target %v", lines[0]["target"])
	}
}

// TestAccessLogSample: AccessLogSample logs about that share of the calls.
func TestAccessLogSample(t *testing.T) {
	gs := startGateways(t, 1, nil)
	var buf syncBuffer
	log := zerolog.New(&buf)
	p := startProxy(t, gs, func(c *Config) { c.AccessLog, c.AccessLogSample = &log, 0.25 })
	c := dialProxy(t, proxyTargets(p)["tcp"])
	const calls = 400
	for i := 0; i < calls; i++ {
		if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatal(err)
		}
	}
	// 100 expected; 5 standard deviations (about 9 each) either side.
	if n := len(buf.lines(t)); n < 55 || n > 145 {
		t.Errorf("%d of %d calls logged at sample 0.25", n, calls)
	}
}
