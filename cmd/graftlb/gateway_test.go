package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// TestGatewayAndCallCommands runs what README tells a newcomer: a gateway
// process and `graftlb call` against it over TCP and WebSocket.
func TestGatewayAndCallCommands(t *testing.T) {
	gw := proctest.Start(t, "gateway", "--name", "gw1", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if gw.Addr.Name != "gw1" || gw.Addr.TCP == "" || gw.Addr.WS == "" || gw.Addr.HTTP == "" {
		t.Fatalf("listening line: %+v", gw.Addr)
	}
	for _, target := range []string{"tcp://" + gw.Addr.TCP, "ws://" + gw.Addr.WS + "/ws"} {
		out, err := exec.Command(proctest.Binary(t), "call", "--target", target, "orders@1.Orders.GetOrder", `["o-1"]`).Output()
		if err != nil {
			t.Fatalf("call over %s: %v", target, err)
		}
		var o orders.Order
		if err := json.Unmarshal(out, &o); err != nil {
			t.Fatalf("call output %q: %v", out, err)
		}
		if want := orders.Make("o-1", "gw1"); o != want {
			t.Fatalf("call over %s printed %+v, want %+v", target, o, want)
		}
	}
	cmd := exec.Command(proctest.Binary(t), "call", "--target", "tcp://"+gw.Addr.TCP, "orders@1.Orders.Nope", `[]`)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("call of a missing method: %v, output %q", err, out)
	}
	if want := "NOT_FOUND"; !strings.Contains(string(out), want) {
		t.Fatalf("call of a missing method printed %q, want %s", out, want)
	}
}

// TestGatewaySIGTERMDrains kills a gateway process with SIGTERM while calls
// are in flight: every call in flight completes, the connected client gets
// GOAWAY, a new session gets DRAINING, and the process exits 0.
func TestGatewaySIGTERMDrains(t *testing.T) {
	gw := proctest.Start(t, "gateway", "--name", "gw1", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--drain-quiet", "300ms")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	targets := []string{"tcp://" + gw.Addr.TCP, "ws://" + gw.Addr.WS + "/ws"}
	var conns []*client.Conn
	for _, tg := range targets {
		c, err := client.Dial(ctx, tg, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// A stateful session with a cart, before the drain.
	cartObj, err := conns[0].Session().New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}

	const perConn = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*perConn+1)
	started := make(chan struct{}, 2*perConn)
	for _, c := range conns {
		for i := 0; i < perConn; i++ {
			wg.Add(1)
			go func(s *client.Session, stateless bool) {
				defer wg.Done()
				started <- struct{}{}
				req := client.Request{Target: protocol.Target{Module: "chaos@1", Type: "Chaos", Method: "Sleep"}, Args: []any{1500}, Stateless: stateless}
				if _, err := s.Do(ctx, req); err != nil {
					errs <- err
				}
			}(c.Session(), i%2 == 0)
		}
	}
	for i := 0; i < 2*perConn; i++ {
		<-started
	}
	waitHTTP(t, "http://"+gw.Addr.HTTP+"/stats", func(body []byte) bool {
		var st struct {
			CallsInFlight int `json:"calls_in_flight"`
		}
		return json.Unmarshal(body, &st) == nil && st.CallsInFlight == 2*perConn
	})
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		select {
		case <-c.GoAway():
		case <-ctx.Done():
			t.Fatal("no GOAWAY after SIGTERM")
		}
	}
	// New sessions are refused; the existing one keeps working.
	fresh := conns[1].NewSession()
	if _, err := fresh.New(ctx, "cart@1", "Cart"); !errors.Is(err, protocol.ErrDraining) {
		t.Fatalf("new session while draining: %v, want DRAINING", err)
	}
	c3, err := client.Dial(ctx, targets[0], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.Session().New(ctx, "cart@1", "Cart"); !errors.Is(err, protocol.ErrDraining) {
		t.Fatalf("new connection's session while draining: %v, want DRAINING", err)
	}
	if _, err := cartObj.Call(ctx, "AddItem", "late", int64(5)); err != nil {
		t.Fatalf("existing session while draining: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call in flight at SIGTERM failed: %v", err)
	}
	code, ok := gw.Wait(15 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("gateway exit: code %d, exited %v; stderr:\n%s", code, ok, gw.Stderr())
	}
}
