// Package ticker is the example module ticker@1 for the gateway-to-client
// directions of the protocol: events (Subscribe) and callbacks (Each).
package ticker

import (
	"context"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
)

// Name and Version identify the module: ticker@1.
const (
	Name    = "ticker"
	Version = "1"
)

// EventName is the name of the events Subscribe pushes.
const EventName = "tick"

// MaxTicks bounds n in Subscribe and Each.
const MaxTicks = 1_000_000

// Tick is the payload of a "tick" event.
type Tick struct {
	Topic   string `cbor:"topic" json:"topic"`
	Seq     int    `cbor:"seq" json:"seq"`
	Gateway string `cbor:"gateway" json:"gateway"`
}

// Module returns ticker@1 with the static type Ticker:
//
//	Ticker.Subscribe(topic string, n int) int   // pushes n "tick" events, then returns n
//	Ticker.Each(n int, cb callback) int64       // calls cb(i) for i in 0..n-1, returns the sum of its results
func Module() *gateway.Module {
	return gateway.NewModule(Name, Version).
		Func("Ticker", "Subscribe", subscribe).
		Func("Ticker", "Each", each)
}

func checkN(n int) error {
	if n < 0 || n > MaxTicks {
		return protocol.Errorf(protocol.CodeBadArgs, "n must be between 0 and %d, got %d", MaxTicks, n)
	}
	return nil
}

func subscribe(ctx context.Context, topic string, n int) (int, error) {
	if err := checkN(n); err != nil {
		return 0, err
	}
	info, _ := gateway.InfoFrom(ctx)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := gateway.Emit(ctx, EventName, Tick{Topic: topic, Seq: i, Gateway: info.Gateway}); err != nil {
			return i, err
		}
	}
	return n, nil
}

func each(ctx context.Context, n int, cb gateway.Callback) (int64, error) {
	if err := checkN(n); err != nil {
		return 0, err
	}
	var sum int64
	for i := 0; i < n; i++ {
		raw, err := cb.Invoke(ctx, i)
		if err != nil {
			return sum, err
		}
		var v int64
		if err := protocol.Unmarshal(raw, &v); err != nil {
			return sum, &gateway.AppError{Type: "BadCallbackResult", Message: "callback must return an integer: " + err.Error()}
		}
		sum += v
	}
	return sum, nil
}
