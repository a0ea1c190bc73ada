package balancer

import "testing"

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
