package gateway

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/protocol"
)

// Faults injects failures and latency into every call a gateway serves, for
// tests and demos of the proxy's failure handling. It is the outermost
// interceptor of the gateway's call chain; methods registered with
// FaultExempt pass through untouched. Its settings are atomics: they may
// change at any time from any goroutine (the chaos module changes them from
// inside calls).
type Faults struct {
	clock clock.Clock

	failRate atomic.Uint64 // math.Float64bits of the rate
	latency  atomic.Int64  // nanoseconds
}

func newFaults(c clock.Clock, rate float64, latency time.Duration) *Faults {
	f := &Faults{clock: c}
	f.failRate.Store(math.Float64bits(rate))
	f.latency.Store(int64(latency))
	return f
}

func checkFailRate(r float64) error {
	if !(r >= 0 && r <= 1) {
		return errors.New("fail rate must be between 0 and 1")
	}
	return nil
}

// SetFailRate sets the share of calls (0..1) that fail with INTERNAL.
func (f *Faults) SetFailRate(rate float64) error {
	if err := checkFailRate(rate); err != nil {
		return protocol.Errorf(protocol.CodeBadArgs, "%v", err)
	}
	f.failRate.Store(math.Float64bits(rate))
	return nil
}

// SetLatency sets the delay added before every call.
func (f *Faults) SetLatency(d time.Duration) error {
	if d < 0 {
		return protocol.Errorf(protocol.CodeBadArgs, "latency must not be negative")
	}
	f.latency.Store(int64(d))
	return nil
}

// FailRate returns the current fail rate.
func (f *Faults) FailRate() float64 { return math.Float64frombits(f.failRate.Load()) }

// Latency returns the current added latency.
func (f *Faults) Latency() time.Duration { return time.Duration(f.latency.Load()) }

// errInjected is the failure Faults injects.
var errInjected = &protocol.Error{Code: protocol.CodeInternal, Message: "chaos: injected failure"}

// intercept is Faults as an Interceptor: wait the latency (on the clock,
// cut short by the call's context), then fail at the fail rate.
func (f *Faults) intercept(ctx context.Context, c *Call, next Handler) (any, error) {
	if c.FaultExempt() {
		return next(ctx, c)
	}
	if d := f.Latency(); d > 0 {
		t := f.clock.NewTimer(d)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if r := f.FailRate(); r > 0 && rand.Float64() < r {
		return nil, errInjected
	}
	return next(ctx, c)
}

// FaultsFrom returns the Faults of the gateway serving the call in ctx, or
// nil outside a call. The chaos module uses it to change them.
func FaultsFrom(ctx context.Context) *Faults {
	c := callFrom(ctx)
	if c == nil {
		return nil
	}
	return c.conn.g.faults
}
