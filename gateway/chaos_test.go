package gateway_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/chaos"
	"github.com/graftlb/graftlb/protocol"
)

var getOrder = gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o-1"}}

func TestChaos(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		t.Run("fail rate from the config, turned off by a call", func(t *testing.T) {
			e := start(t, func(c *gatewayConfig) { c.ChaosFailRate = 1 })
			p := e.dial(t, binding)
			for _, c := range []gatewaytest.Call{getOrder, {Target: "cart@1.Cart.$new"}} {
				gatewaytest.ExpectError(t, p.Call(c), protocol.CodeInternal)
			}
			var s chaos.Settings
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.SetFailRate", Flags: stateless, Args: []any{0.0}}), &s)
			if s != (chaos.Settings{FailRate: 0, Gateway: "gw-test"}) {
				t.Fatalf("settings %+v", s)
			}
			gatewaytest.Result(t, p.Call(getOrder), nil)
		})
		t.Run("fail rate set by a call", func(t *testing.T) {
			e := start(t, nil)
			p := e.dial(t, binding)
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.SetFailRate", Flags: stateless, Args: []any{0.5}}), nil)
			failed := 0
			const n = 200
			for i := 0; i < n; i++ {
				if f := p.Call(getOrder); f.Type == protocol.TypeError {
					gatewaytest.ExpectError(t, f, protocol.CodeInternal)
					failed++
				}
			}
			if failed < n/5 || failed > n*4/5 {
				t.Fatalf("%d of %d calls failed at rate 0.5", failed, n)
			}
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.SetFailRate", Flags: stateless, Args: []any{1.5}}),
				protocol.CodeBadArgs)
		})
		t.Run("latency from the config and set by a call", func(t *testing.T) {
			e := start(t, func(c *gatewayConfig) { c.ChaosLatency = 100 * time.Millisecond })
			p := e.dial(t, binding)
			timed := func(want time.Duration) {
				t.Helper()
				begin := time.Now()
				gatewaytest.Result(t, p.Call(getOrder), nil)
				if d := time.Since(begin); d < want {
					t.Fatalf("call took %v, want at least %v", d, want)
				}
			}
			timed(100 * time.Millisecond)
			var s chaos.Settings
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.SetLatency", Flags: stateless, Args: []any{250}}), &s)
			if s.LatencyMs != 250 {
				t.Fatalf("settings %+v", s)
			}
			timed(250 * time.Millisecond)
			// The latency counts against the call's deadline.
			c := getOrder
			c.Deadline = 50
			gatewaytest.ExpectError(t, p.Call(c), protocol.CodeDeadlineExceeded)
		})
		t.Run("Fail returns the code asked for", func(t *testing.T) {
			e := start(t, nil)
			p := e.dial(t, binding)
			for _, code := range []protocol.Code{protocol.CodeUnavailable, protocol.CodeNotFound, protocol.CodeOverloaded} {
				gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.Fail", Flags: stateless, Args: []any{code.String()}}), code)
			}
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "chaos@1.Chaos.Fail", Flags: stateless, Args: []any{"NOPE"}}),
				protocol.CodeBadArgs)
		})
	})
}

// TestChaosCrash runs a gateway in a child process and crashes it.
func TestChaosCrash(t *testing.T) {
	if os.Getenv("GATEWAY_CRASH_CHILD") != "" {
		e := start(t, nil)
		// Tell the parent where to call, then wait to be killed.
		if _, err := os.Stdout.WriteString("ADDR " + e.g.Addrs().TCP + "\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gatewaytest.Timeout)
		t.Fatal("not crashed")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosCrash$")
	cmd.Env = append(os.Environ(), "GATEWAY_CRASH_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var line strings.Builder
	buf := make([]byte, 1)
	for !strings.HasSuffix(line.String(), "\n") {
		if _, err := out.Read(buf); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child said %q: %v", line.String(), err)
		}
		line.WriteByte(buf[0])
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line.String(), "ADDR "))
	p := gatewaytest.Dial(t, "tcp", addr, gatewaytest.Options{})
	p.Hello(0, protocol.SessionID{})
	p.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Crash", Flags: stateless})
	if err := p.WaitClosed(); err == nil {
		t.Fatal("connection still open")
	}
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", err)
	}
}

func TestInterceptors(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	e := start(t, func(c *gatewayConfig) {
		c.Interceptors = []gateway.Interceptor{func(ctx context.Context, call *gateway.Call, next gateway.Handler) (any, error) {
			info, ok := gateway.InfoFrom(ctx)
			if !ok || info != call.Info() {
				t.Errorf("InfoFrom in an interceptor: %+v %v", info, ok)
			}
			mu.Lock()
			seen = append(seen, info.Target.String())
			mu.Unlock()
			if info.Target.Method == "Boom" {
				return nil, protocol.Errorf(protocol.CodeUnavailable, "refused by interceptor")
			}
			return next(ctx, call)
		}}
	})
	p := e.dial(t, "tcp")
	gatewaytest.Result(t, p.Call(getOrder), nil)
	gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "test@1.T.Boom", Flags: stateless}), protocol.CodeUnavailable)
	obj := newCart(t, p, gatewaytest.Call{})
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.$release", Object: obj}), nil)
	mu.Lock()
	defer mu.Unlock()
	want := "orders@1.Orders.GetOrder test@1.T.Boom cart@1.Cart.$new cart@1.Cart.$release"
	if got := strings.Join(seen, " "); got != want {
		t.Fatalf("interceptor saw %q, want %q", got, want)
	}
}
