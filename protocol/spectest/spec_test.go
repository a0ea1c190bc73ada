// Package spectest checks that protocol/SPEC.md is enough to write a
// client: testdata/client.py was written from SPEC.md alone, in Python
// with the standard library only, and must hold a whole conversation with
// a gateway and with a proxy in front of gateways.
package spectest

import (
	"encoding/json"
	"net"
	"os/exec"
	"testing"

	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
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
