// Package spectest checks that protocol/SPEC.md is enough to write a
// client: testdata/client.py was written from SPEC.md alone, in Python
// with the standard library only, and must hold a whole conversation with
// a gateway and with a proxy in front of gateways.
package spectest

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/testgw"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

type summary struct {
	OK           bool   `json:"ok"`
	Error        string `json:"error"`
	Server       string `json:"server"`
	OrderGateway string `json:"order_gateway"`
	CartGateway  string `json:"cart_gateway"`
}

func runClient(t *testing.T, addr string) summary {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("python3", "testdata/client.py", host, port).Output()
	var s summary
	if jerr := json.Unmarshal(out, &s); jerr != nil {
		t.Fatalf("client.py: %v, output %q", err, out)
	}
	if err != nil || !s.OK {
		t.Fatalf("client.py failed: %v: %s", err, s.Error)
	}
	return s
}

func TestPythonClientAgainstGateway(t *testing.T) {
	g := testgw.Start(t, "gw1", nil)
	s := runClient(t, g.Addrs().TCP)
	if s.Server != "gw1" || s.OrderGateway != "gw1" || s.CartGateway != "gw1" {
		t.Fatalf("summary %+v", s)
	}
}

func TestPythonClientThroughProxy(t *testing.T) {
	var ms []discovery.Member
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		g := testgw.Start(t, name, nil)
		ms = append(ms, discovery.Member{Name: name, Role: discovery.RoleGateway, Addrs: discovery.Addrs{TCP: g.Addrs().TCP}})
	}
	p, err := balancer.New(balancer.Config{TCP: "127.0.0.1:0"}, discovery.NewStatic(ms))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := runClient(t, p.Addrs().TCP)
	if s.Server != "graftlb" || s.CartGateway == "" {
		t.Fatalf("summary %+v", s)
	}
}

// TestPythonClientHandoff: the gateway holding the Python client's cart
// drains and hands it over to the other gateway of its pool; the client
// gets a MOVED frame with that gateway's address, resumes its session there
// and finds the cart (SPEC.md section 7, Handoff).
func TestPythonClientHandoff(t *testing.T) {
	slow := func(c *gateway.Config) { c.DrainQuiet = 5 * time.Second } // still up when the client calls again
	gws := []*gateway.Gateway{testgw.Start(t, "gw1", slow), testgw.Start(t, "gw2", slow)}
	pool := func() []gateway.PeerInfo {
		var out []gateway.PeerInfo
		for _, g := range gws {
			out = append(out, gateway.PeerInfo{Name: g.Name(), TCP: g.Addrs().TCP, WS: g.Addrs().WS, Weight: 1,
				Draining: g.State() != gateway.StateReady})
		}
		return out
	}
	for _, g := range gws {
		g.SetPool(pool)
	}
	host, port, _ := net.SplitHostPort(gws[0].Addrs().TCP)
	cmd := exec.Command("python3", "testdata/client.py", "handoff", host, port)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("client.py: %q, %v", line, err)
	}
	drained := make(chan error, 1)
	go func() { drained <- gws[0].Drain(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for gws[0].Stats().SessionsMoved != 1 {
		if time.Now().After(deadline) {
			t.Fatal("gw1 did not hand the session over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = stdin.Write([]byte("go\n"))
	line, _ := out.ReadString('\n')
	err := cmd.Wait()
	var s struct {
		summary
		MovedMessage string `json:"moved_message"`
	}
	if jerr := json.Unmarshal([]byte(line), &s); jerr != nil || err != nil || !s.OK {
		t.Fatalf("client.py: %v, %v, output %q", err, jerr, line)
	}
	if s.Server != "gw1" || s.CartGateway != "gw2" || s.MovedMessage != "session moved to gateway gw2" {
		t.Fatalf("summary %+v", s)
	}
	_ = gws[0].Close()
	<-drained
}
