// Package chaos is the example module chaos@1: faults on demand, for tests
// and demos of how clients and proxies handle them.
package chaos

import (
	"context"
	"os"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
)

// Name and Version identify the module: chaos@1.
const (
	Name    = "chaos"
	Version = "1"
)

// MaxSleep bounds Sleep and SetLatency.
const MaxSleep = 10 * time.Minute

// Slept is the result of Sleep.
type Slept struct {
	Ms      int    `cbor:"ms" json:"ms"`
	Gateway string `cbor:"gateway" json:"gateway"`
}

// Settings is the result of SetFailRate and SetLatency: the gateway's
// fault settings after the change.
type Settings struct {
	FailRate  float64 `cbor:"fail_rate" json:"fail_rate"`
	LatencyMs int64   `cbor:"latency_ms" json:"latency_ms"`
	Gateway   string  `cbor:"gateway" json:"gateway"`
}

// Module returns chaos@1 with the static type Chaos:
//
//	Chaos.Sleep(ms int) Slept            // honours the call's deadline
//	Chaos.Fail(code string)              // fails with that protocol code, e.g. "UNAVAILABLE"
//	Chaos.Crash()                        // SIGKILLs the gateway's process
//	Chaos.SetFailRate(rate float64) Settings  // share of every call that fails with INTERNAL
//	Chaos.SetLatency(ms int) Settings         // latency added to every call
//
// The two setters are exempt from the faults they set, so that a fail rate
// of 1 can be turned off again.
func Module() *gateway.Module {
	return gateway.NewModule(Name, Version).
		Func("Chaos", "Sleep", sleep).
		Func("Chaos", "Fail", fail).
		Func("Chaos", "Crash", crash).
		Func("Chaos", "SetFailRate", setFailRate, gateway.FaultExempt()).
		Func("Chaos", "SetLatency", setLatency, gateway.FaultExempt())
}

func sleep(ctx context.Context, ms int) (Slept, error) {
	if err := checkMs(ms); err != nil {
		return Slept{}, err
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return Slept{}, ctx.Err()
	}
	info, _ := gateway.InfoFrom(ctx)
	return Slept{Ms: ms, Gateway: info.Gateway}, nil
}

// checkMs bounds a duration in milliseconds (before it can overflow).
func checkMs(ms int) error {
	if ms < 0 || int64(ms) > MaxSleep.Milliseconds() {
		return protocol.Errorf(protocol.CodeBadArgs, "ms must be between 0 and %d, got %d", MaxSleep.Milliseconds(), ms)
	}
	return nil
}

// fail returns a *protocol.Error, which the gateway sends with its code.
func fail(code string) error {
	c, ok := protocol.ParseCode(code)
	if !ok {
		return protocol.Errorf(protocol.CodeBadArgs, "unknown error code %q", code)
	}
	return protocol.Errorf(c, "chaos: failure requested")
}

// crash kills the process without any cleanup, as a machine failure would.
func crash() error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Kill() // SIGKILL on Unix
}

func settings(ctx context.Context) (Settings, *gateway.Faults) {
	info, _ := gateway.InfoFrom(ctx)
	f := gateway.FaultsFrom(ctx)
	return Settings{FailRate: f.FailRate(), LatencyMs: f.Latency().Milliseconds(), Gateway: info.Gateway}, f
}

func setFailRate(ctx context.Context, rate float64) (Settings, error) {
	_, f := settings(ctx)
	if err := f.SetFailRate(rate); err != nil {
		return Settings{}, err
	}
	s, _ := settings(ctx)
	return s, nil
}

func setLatency(ctx context.Context, ms int) (Settings, error) {
	if err := checkMs(ms); err != nil {
		return Settings{}, err
	}
	_, f := settings(ctx)
	if err := f.SetLatency(time.Duration(ms) * time.Millisecond); err != nil {
		return Settings{}, err
	}
	s, _ := settings(ctx)
	return s, nil
}
