package deploy

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/internal/proctest"
)

// l4Cluster is two gateways behind two graftlb proxies, on loopback.
type l4Cluster struct {
	proxies []*proctest.Proc
	ready   string // the readiness path the configs check
}

func startL4Cluster(t *testing.T) *l4Cluster {
	t.Helper()
	gw1, gw2 := startGateway(t, "gw1"), startGateway(t, "gw2")
	c := &l4Cluster{proxies: []*proctest.Proc{startProxy(t, "proxy1", gw1, gw2), startProxy(t, "proxy2", gw1, gw2)}}
	c.ready = readyPath(t, c.proxies[0].Addr.Admin)
	return c
}

// exerciseL4 checks an L4 tier listening on listen in front of c: calls
// go through; connections are spread over both proxies; once proxy1 is
// SIGKILLed, every new connection still succeeds (the tier sends a
// refused connection to the other proxy).
func exerciseL4(t *testing.T, c *l4Cluster, listen string) {
	t.Helper()
	target := "tcp://" + listen
	waitUntil(t, 15*time.Second, "a call through the L4 tier", func() bool { _, err := callOnce(target); return err == nil })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held []*client.Conn
	defer func() {
		for _, h := range held {
			_ = h.Close()
		}
	}()
	for i := 0; i < 8; i++ {
		h, err := client.Dial(ctx, target, client.Options{})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, h)
		if _, err := callOn(ctx, h); err != nil {
			t.Fatalf("call on connection %d: %v", i, err)
		}
	}
	for _, p := range c.proxies {
		if n := proxyConns(t, p.Addr.Admin); n == 0 {
			t.Errorf("%s got none of 8 connections", p.Addr.Name)
		}
	}
	for _, h := range held {
		_ = h.Close()
	}
	held = nil

	c.proxies[0].Kill()
	failed := 0
	for i := 0; i < 20; i++ {
		if _, err := callOnce(target); err != nil {
			failed++
			t.Logf("new connection %d after proxy1 died: %v", i, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 20 new connections failed after proxy1 died", failed)
	}
}

// TestHAProxyL4 runs deploy/haproxy/graftlb-l4.cfg with Debian's haproxy
// in front of two graftlb proxies: mode tcp, health checks on the admin
// readiness endpoint, redispatch. It also waits for the health check to
// mark the killed proxy down.
func TestHAProxyL4(t *testing.T) {
	bin := sbin(t, "haproxy", "haproxy")
	c := startL4Cluster(t)
	listen := freeAddr(t)
	p1, p2 := c.proxies[0].Addr, c.proxies[1].Addr
	cfg := render(t, "haproxy/graftlb-l4.cfg", map[string]string{
		"10.0.0.10:9990":                 listen,
		"10.0.0.21:9990 check port 9889": p1.TCP + " check port " + port(p1.Admin),
		"10.0.0.22:9990 check port 9889": p2.TCP + " check port " + port(p2.Admin),
		"GET /readyz":                    "GET " + c.ready,
	})
	if out, err := execOut(bin, "-c", "-f", cfg); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	srv := startServer(t, bin, "-db", "-f", cfg)
	exerciseL4(t, c, listen)
	waitUntil(t, 10*time.Second, "HAProxy's health check to mark proxy1 down", func() bool {
		return strings.Contains(srv.out.String(), "graftlb_proxies/proxy1 is DOWN")
	})
}

// TestNginxL4 runs deploy/nginx/graftlb-l4.conf with Debian's nginx and
// its stream module in front of two graftlb proxies: least_conn, passive
// checks, proxy_next_upstream.
func TestNginxL4(t *testing.T) {
	bin := sbin(t, "nginx", "nginx")
	c := startL4Cluster(t)
	listen := freeAddr(t)
	dir := t.TempDir()
	cfg := render(t, "nginx/graftlb-l4.conf", map[string]string{
		"10.0.0.10:9990":                      listen,
		"10.0.0.21:9990":                      c.proxies[0].Addr.TCP,
		"10.0.0.22:9990":                      c.proxies[1].Addr.TCP,
		"/run/nginx-graftlb-l4.pid":           dir + "/nginx.pid",
		"/var/log/nginx/graftlb-l4.error.log": dir + "/error.log",
	})
	runNginx(t, bin, cfg, dir)
	exerciseL4(t, c, listen)
}

// runNginx checks a whole nginx.conf with nginx -t and runs it in the
// foreground as one process.
func runNginx(t *testing.T, bin, cfg, dir string) *server {
	t.Helper()
	args := []string{"-p", dir, "-c", cfg, "-g", "daemon off; master_process off;"}
	if out, err := execOut(bin, append([]string{"-t"}, args...)...); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	return startServer(t, bin, args...)
}

// exerciseHash checks a hashing tier listening on listen in front of
// gateways: every ws://listen/ws?session=K connection for one K lands on
// one gateway, and the keys spread over more than one.
func exerciseHash(t *testing.T, listen string) {
	t.Helper()
	base := "ws://" + listen + "/ws?session="
	waitUntil(t, 15*time.Second, "a call through the hashing tier", func() bool { _, err := callOnce(base + "k0"); return err == nil })
	used := map[string]int{}
	for i := 0; i < 24; i++ {
		key := fmt.Sprintf("session-%d", i)
		first, err := callOnce(base + key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for j := 0; j < 2; j++ {
			again, err := callOnce(base + key)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if again != first {
				t.Fatalf("%s went to %s, then to %s", key, first, again)
			}
		}
		used[first]++
	}
	if len(used) < 2 {
		t.Fatalf("24 keys all went to %v", used)
	}
	t.Logf("24 session keys over the gateways: %v", used)
}

func startHashGateways(t *testing.T) []*proctest.Proc {
	return []*proctest.Proc{startGateway(t, "gw1"), startGateway(t, "gw2"), startGateway(t, "gw3")}
}

// TestHAProxyURLParam runs deploy/haproxy/gateways-url-param.cfg: the plain
// pattern, WebSocket clients hashed on ?session= straight to gateways.
func TestHAProxyURLParam(t *testing.T) {
	bin := sbin(t, "haproxy", "haproxy")
	gws := startHashGateways(t)
	listen := freeAddr(t)
	repl := map[string]string{"10.0.0.10:8888": listen}
	for i, g := range gws {
		repl[fmt.Sprintf("10.0.0.1%d:8888 check port 8889", i+1)] = g.Addr.WS + " check port " + port(g.Addr.HTTP)
	}
	cfg := render(t, "haproxy/gateways-url-param.cfg", repl)
	if out, err := execOut(bin, "-c", "-f", cfg); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	startServer(t, bin, "-db", "-f", cfg)
	exerciseHash(t, listen)
}

// TestNginxHash runs deploy/nginx/gateways-hash.conf: the plain pattern
// with nginx, `hash $arg_session consistent`.
func TestNginxHash(t *testing.T) {
	bin := sbin(t, "nginx", "nginx")
	gws := startHashGateways(t)
	listen := freeAddr(t)
	dir := t.TempDir()
	repl := map[string]string{
		"10.0.0.10:8888":                        listen,
		"/run/nginx-graftlb-hash.pid":           dir + "/nginx.pid",
		"/var/log/nginx/graftlb-hash.error.log": dir + "/error.log",
	}
	for i, g := range gws {
		repl[fmt.Sprintf("10.0.0.1%d:8888", i+1)] = g.Addr.WS
	}
	runNginx(t, bin, render(t, "nginx/gateways-hash.conf", repl), dir)
	exerciseHash(t, listen)
}

// execOut runs a command and returns its combined output.
func execOut(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}
