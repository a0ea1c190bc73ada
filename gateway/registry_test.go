package gateway_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/protocol"
)

type goodType struct{}

func (*goodType) Fine(ctx context.Context, n int) (int, error) { return n, nil }

func TestRegistrationErrors(t *testing.T) {
	tests := []struct {
		name    string
		m       *gateway.Module
		wantErr string // "" = valid
	}{
		{"valid", gateway.NewModule("m", "1").Func("T", "F", func(context.Context, string, gateway.Callback) (int, error) { return 0, nil }).
			Type("G", func() *goodType { return &goodType{} }), ""},
		{"empty version", gateway.NewModule("m", ""), "must not be empty"},
		{"dotted name", gateway.NewModule("m.x", "1"), "must not contain"},
		{"not a function", gateway.NewModule("m", "1").Func("T", "F", 42), "want a function"},
		{"variadic", gateway.NewModule("m", "1").Func("T", "F", func(...int) {}), "variadic"},
		{"three results", gateway.NewModule("m", "1").Func("T", "F", func() (int, int, error) { return 0, 0, nil }), "at most two results"},
		{"second result not error", gateway.NewModule("m", "1").Func("T", "F", func() (int, int) { return 0, 0 }), "must be error"},
		{"channel parameter", gateway.NewModule("m", "1").Func("T", "F", func(chan int) {}), "parameter 1 (chan int)"},
		{"context not first", gateway.NewModule("m", "1").Func("T", "F", func(int, context.Context) {}), "first parameter"},
		{"reserved name", gateway.NewModule("m", "1").Func("T", "$F", func() {}), "reserved"},
		{"duplicate", gateway.NewModule("m", "1").Func("T", "F", func() {}).Func("T", "F", func() {}), "twice"},
		{"dotted type", gateway.NewModule("m", "1").Func("A.B", "F", func() {}), "bad type name"},
		{"constructor returns a value", gateway.NewModule("m", "1").Type("G", func() goodType { return goodType{} }), "must return a pointer"},
		{"bad constructor", gateway.NewModule("m", "1").Type("G", func(chan int) *goodType { return nil }), "G.$new: parameter 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Err()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "gateway: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if _, err := gateway.New(gateway.Config{Modules: []*gateway.Module{tc.m}}); err == nil {
				t.Fatal("New accepted a module with a registration error")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*gateway.Config)
		wantErr string
	}{
		{"defaults", func(*gateway.Config) {}, ""},
		{"fail rate over 1", func(c *gateway.Config) { c.ChaosFailRate = 1.5 }, "chaos_fail_rate"},
		{"negative latency", func(c *gateway.Config) { c.ChaosLatency = -1 }, "chaos_latency"},
		{"duplicate module", func(c *gateway.Config) { c.Modules = []*gateway.Module{orders.Module(), orders.Module()} }, "twice"},
		{"nil module", func(c *gateway.Config) { c.Modules = []*gateway.Module{nil} }, "nil module"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gateway.DefaultConfig()
			tc.mut(&cfg)
			g, err := gateway.New(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = g.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	e := start(t, nil)
	if err := e.g.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	cfg := gateway.DefaultConfig()
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", e.g.Addrs().WS, ""
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err == nil || !strings.Contains(err.Error(), "gateway: listen ws") {
		t.Fatalf("Start on a busy port = %v", err)
	}
	_ = g.Close()
}

// TestServeConn hands the gateway one end of a pipe, as a proxy test may.
func TestServeConn(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.TCP, cfg.WS, cfg.HTTP = "", "", ""
	cfg.Modules = []*gateway.Module{orders.Module()}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- g.ServeConn(protocol.NewStreamConn(a, protocol.ConnOptions{})) }()
	client := protocol.NewStreamConn(b, protocol.ConnOptions{})
	defer client.Abort()
	_ = client.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: protocol.FlagProxy})
	args, _ := protocol.MarshalArgs("o-7")
	_ = client.Send(&protocol.Frame{Type: protocol.TypeCall, Flags: protocol.FlagStateless, CallID: 3,
		Module: []byte("orders@1"), TypeName: []byte("Orders"), Method: []byte("GetOrder"), Body: args})
	var f protocol.Frame
	for _, want := range []protocol.Type{protocol.TypeWelcome, protocol.TypeResult} {
		raw, err := client.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := protocol.Decode(raw, &f); err != nil || f.Type != want {
			t.Fatalf("got %s (%v), want %s", gatewaytest.Describe(&f), err, want)
		}
	}
	var o orders.Order
	if err := protocol.Unmarshal(f.Body, &o); err != nil || o != orders.Make("o-7", "gateway") {
		t.Fatalf("order %+v (%v)", o, err)
	}
	_ = g.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if err := g.ServeConn(protocol.NewStreamConn(a, protocol.ConnOptions{})); err != gateway.ErrClosed {
		t.Fatalf("ServeConn after Close = %v", err)
	}
}
