package balancer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// refusalLines returns the proxy's log lines (as parsed JSON) whose
// message contains what.
func (s *logSink) refusalLines(t *testing.T, what string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && strings.Contains(m["message"].(string), what) {
			out = append(out, m)
		}
	}
	return out
}

// TestProxyMaxConnsPerSource (issue 9, defect 7): with a limit of N
// connections per source address, the N+1st from one address gets ERROR
// OVERLOADED and is closed, a connection from another address is still
// admitted, and once one of the first closes, the first address may
// connect again. A flood of refusals is logged once per interval, not
// once per connection.
func TestProxyMaxConnsPerSource(t *testing.T) {
	const limit = 2
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			gs := startGateways(t, 1, nil)
			sink := &logSink{}
			log := zerolog.New(sink).Level(zerolog.InfoLevel)
			clk := clock.NewFake()
			p := startProxy(t, gs, func(c *Config) {
				c.Logger = &log
				c.Clock = clk
				c.MaxConnsPerSource = limit
			})
			addr := map[string]string{"tcp": p.Addrs().TCP, "ws": p.Addrs().WS}[binding]
			dial := func(ip string) *gatewaytest.Peer {
				return gatewaytest.Dial(t, binding, addr, gatewaytest.Options{LocalIP: ip})
			}
			refused := func(ip string) {
				t.Helper()
				c := dial(ip)
				e := gatewaytest.ExpectError(t, c.Next(), protocol.CodeOverloaded)
				if !strings.Contains(e.Message, ip) || !strings.Contains(e.Message, "2") {
					t.Errorf("refusal %q names neither the source %s nor the limit", e.Message, ip)
				}
				c.WaitClosed()
			}
			first := make([]*gatewaytest.Peer, limit)
			for i := range first {
				first[i] = dial("127.0.0.1")
				first[i].Hello(0, protocol.SessionID{})
			}
			for range 3 {
				refused("127.0.0.1")
			}
			other := dial("127.0.0.2")
			other.Hello(0, protocol.SessionID{})
			gatewaytest.Result(t, other.Call(getOrderCall), nil)
			gatewaytest.Result(t, first[0].Call(getOrderCall), nil)

			first[0].Close()
			proctest.Eventually(t, 5*time.Second, "the closed connection to be released", func() bool {
				return p.admission.Conns() == limit
			})
			again := dial("127.0.0.1")
			again.Hello(0, protocol.SessionID{})
			gatewaytest.Result(t, again.Call(getOrderCall), nil)

			// Three refusals within one interval: one log line.
			if lines := sink.refusalLines(t, "per source"); len(lines) != 1 {
				t.Fatalf("3 refusals logged %d times, want once: %v", len(lines), lines)
			}
			clk.Advance(listener.RefusalLogInterval)
			refused("127.0.0.1")
			lines := sink.refusalLines(t, "per source")
			if len(lines) != 2 || lines[1]["level"] != "warn" || lines[1]["suppressed"] != float64(2) {
				t.Fatalf("after the interval, a refusal logged %v, want a second warn line counting 2 suppressed", lines)
			}
		})
	}
}
