package main

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// poolAddrs is the part of GET /pool that says where the proxy dials.
type poolAddrs struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Addrs struct {
		TCP string `json:"tcp"`
	} `json:"addrs"`
}

// TestGatewayOnWildcardAdvertisesDialable (issue 13): a gateway bound to
// 0.0.0.0, as in a container, used to announce 0.0.0.0:PORT, and every
// proxy dialed itself. Without --advertise it now announces its gossip
// IP; with --advertise NAME it announces NAME, and the proxy reaches it
// under that name. --gossip takes a name too.
func TestGatewayOnWildcardAdvertisesDialable(t *testing.T) {
	key := newKey()
	px := startProxyProc(t, "--gossip", "127.0.0.1:0", "--gossip-key", key)
	_, gport, _ := net.SplitHostPort(px.Addr.Gossip)
	for _, tc := range []struct {
		name, advertise, wantHost string
	}{
		{"gw-default", "", "127.0.0.1"},
		{"gw-named", "localhost", "localhost"},
	} {
		args := []string{"gateway", "--name", tc.name, "--tcp", "0.0.0.0:0", "--ws", "", "--http", "",
			"--gossip", "localhost:0", "--join", "localhost:" + gport, "--gossip-key", key, "--log-format", "json"}
		if tc.advertise != "" {
			args = append(args, "--advertise", tc.advertise)
		}
		gw := proctest.Start(t, args...)
		_, tport, _ := net.SplitHostPort(gw.Addr.TCP)
		want := net.JoinHostPort(tc.wantHost, tport)
		proctest.Eventually(t, 20*time.Second, tc.name+" in the pool, ready, at "+want, func() bool {
			var pool []poolAddrs
			waitHTTP(t, "http://"+px.Addr.Admin+"/pool", func(b []byte) bool { return jsonInto(b, &pool) })
			for _, m := range pool {
				if m.Name == tc.name {
					return m.Addrs.TCP == want && m.State == "ready"
				}
			}
			return false
		})
	}
	c := dialT(t, "tcp://"+px.Addr.TCP)
	for i := 0; i < 20; i++ {
		if _, err := c.Session().CallStateless(ctxT(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatalf("call %d through the proxy: %v", i, err)
		}
	}
}

// TestAdvertiseNeedsGossip: a gateway given --advertise without --gossip
// refuses to start rather than ignore it.
func TestAdvertiseNeedsGossip(t *testing.T) {
	out, err := exec.Command(proctest.Binary(t), "gateway", "--tcp", "127.0.0.1:0", "--ws", "", "--http", "",
		"--advertise", "gw1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--advertise needs --gossip") {
		t.Fatalf("exit %v, output %s", err, out)
	}
}
