package balancer

import (
	"errors"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

// TestRetryBudget: retries in flight may not exceed RetryBudget × active
// calls, with RetryMin as the floor (Envoy's retry budget).
func TestRetryBudget(t *testing.T) {
	p, _ := testBackends(t)
	tests := []struct {
		active int64
		want   int // retries granted before one is denied
	}{
		{active: 0, want: 3},    // the floor
		{active: 10, want: 3},   // 20% of 10 is 2: the floor wins
		{active: 100, want: 20}, // 20%
	}
	for _, tt := range tests {
		p.active.Store(tt.active)
		var held []call
		for {
			pd := call{down: &downstream{p: p}}
			if !pd.takeRetry() {
				break
			}
			held = append(held, pd)
		}
		if len(held) != tt.want {
			t.Errorf("active %d: %d retries granted, want %d", tt.active, len(held), tt.want)
		}
		for i := range held {
			held[i].endRetry()
		}
		if p.retries.Load() != 0 {
			t.Fatalf("retries in flight %d after all ended", p.retries.Load())
		}
	}
}

// TestRetriesBoundedByMaxAttempts: an idempotent stateless call that every
// gateway fails is sent to MaxAttempts gateways, no more, and its client
// gets the last failure. Before, each failed attempt was retried again
// until the call's deadline (hundreds of thousands of times a minute),
// which opened every breaker of the pool.
func TestRetriesBoundedByMaxAttempts(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, nil)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	before := served(gs, "chaos@1")
	fail := protocol.Target{Module: "chaos@1", Type: "Chaos", Method: "Fail"}
	_, err := c.Session().Do(testCtx(t), client.Request{Target: fail, Args: []any{"INTERNAL"}, Stateless: true, Idempotent: true})
	if !errors.Is(err, protocol.ErrInternal) {
		t.Fatalf("a call every gateway fails: %v, want INTERNAL", err)
	}
	if got := served(gs, "chaos@1") - before; got != DefaultMaxAttempts {
		t.Fatalf("the call was sent %d times, want MaxAttempts = %d", got, DefaultMaxAttempts)
	}
	if r := p.Stats().Retries; r != DefaultMaxAttempts-1 {
		t.Fatalf("%d retries, want %d", r, DefaultMaxAttempts-1)
	}
}
