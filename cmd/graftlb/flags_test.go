package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/passthrough"
	"github.com/graftlb/graftlb/protocol"
)

// TestBackendFlagKeepsOptions (issue 9, defect 10): one --backend or
// --passthrough value is one backend with all its options; the commas
// between options do not split it. --join still takes a comma list.
func TestBackendFlagKeepsOptions(t *testing.T) {
	var backends, passthrough repeatFlag
	var join listFlag
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&backends, "backend", "")
	fs.Var(&passthrough, "passthrough", "")
	fs.Var(&join, "join", "")
	err := fs.Parse([]string{
		"--backend", "tcp://127.0.0.1:41953#name=gw1,weight=2", "--backend", "tcp://127.0.0.1:41954#name=gw2,zone=z",
		"--passthrough", "ws://127.0.0.1:8888/ws#name=gw1,weight=2,http=:8889",
		"--join", "127.0.0.1:7950,127.0.0.1:7951", "--join", "127.0.0.1:7952",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tcp://127.0.0.1:41953#name=gw1,weight=2", "tcp://127.0.0.1:41954#name=gw2,zone=z"}; !slices.Equal(backends, want) {
		t.Errorf("--backend gave %q, want %q", backends, want)
	}
	if want := []string{"ws://127.0.0.1:8888/ws#name=gw1,weight=2,http=:8889"}; !slices.Equal(passthrough, want) {
		t.Errorf("--passthrough gave %q, want %q", passthrough, want)
	}
	if want := []string{"127.0.0.1:7950", "127.0.0.1:7951", "127.0.0.1:7952"}; !slices.Equal(join, want) {
		t.Errorf("--join gave %q, want %q", join, want)
	}
}

// TestBackendOptionsThroughProcess (issue 9, defect 10): the syntax the
// help text and README document, --backend 'tcp://HOST:PORT#name=gw1,weight=2'
// and --passthrough 'ws://HOST:PORT/ws#name=gw1,weight=2,http=HOST:PORT', starts a
// proxy process whose pool has exactly those members with those options.
func TestBackendOptionsThroughProcess(t *testing.T) {
	g1, g2 := startGW(t, "gw1"), startGW(t, "gw2")
	p := startProxyProc(t, "--backend", fmt.Sprintf("tcp://%s#name=gw1,weight=2", g1.Addr.TCP),
		"--backend", fmt.Sprintf("tcp://%s#name=gw2,zone=z1,weight=3", g2.Addr.TCP))
	resp, err := http.Get("http://" + p.Addr.Admin + "/pool")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var pool []struct {
		Name   string `json:"name"`
		Weight int    `json:"weight"`
		Zone   string `json:"zone"`
	}
	if err := json.Unmarshal(b, &pool); err != nil {
		t.Fatalf("/pool: %v: %s", err, b)
	}
	got := map[string]string{}
	for _, m := range pool {
		got[m.Name] = fmt.Sprintf("weight=%d zone=%q", m.Weight, m.Zone)
	}
	want := map[string]string{"gw1": `weight=2 zone=""`, "gw2": `weight=3 zone="z1"`}
	if len(got) != len(want) || got["gw1"] != want["gw1"] || got["gw2"] != want["gw2"] {
		t.Errorf("pool is %v, want %v", got, want)
	}

	pt := startProxyProc(t, "--passthrough", fmt.Sprintf("ws://%s/ws#name=gw1,weight=2,http=%s", g1.Addr.WS, g1.Addr.HTTP))
	c, err := client.Dial(ctxT(t), "ws://"+pt.Addr.WS+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Server() != "gw1" {
		t.Errorf("pass-through reached %q, want gw1", c.Server())
	}
}

// TestMaxConnsPerSourceFlag (issue 9, defect 7): --max-conns-per-source
// reaches the proxy process: with 1, a second connection from the same
// address gets OVERLOADED, one from another address is served.
func TestMaxConnsPerSourceFlag(t *testing.T) {
	g := startGW(t, "gw1")
	p := startProxyProc(t, "--backend", fmt.Sprintf("tcp://%s#name=gw1", g.Addr.TCP), "--max-conns-per-source", "1")
	a := gatewaytest.Dial(t, "tcp", p.Addr.TCP, gatewaytest.Options{LocalIP: "127.0.0.1"})
	a.Hello(0, protocol.SessionID{})
	b := gatewaytest.Dial(t, "tcp", p.Addr.TCP, gatewaytest.Options{LocalIP: "127.0.0.1"})
	gatewaytest.ExpectError(t, b.Next(), protocol.CodeOverloaded)
	c := gatewaytest.Dial(t, "ws", p.Addr.WS, gatewaytest.Options{LocalIP: "127.0.0.2"})
	c.Hello(0, protocol.SessionID{})
}

// flagDefaults runs `graftlb cmd -h` and returns each flag's default as
// the help text prints it ("" for a zero default, which it omits).
func flagDefaults(t *testing.T, cmd string) map[string]string {
	t.Helper()
	var out strings.Builder
	run([]string{cmd, "-h"}, io.Discard, &out)
	defs := map[string]string{}
	re := regexp.MustCompile(`\(default "?(.*?)"?\)\s*$`)
	for _, block := range strings.Split(out.String(), "\n  -")[1:] {
		name, _, _ := strings.Cut(strings.Fields(block)[0], " ")
		if m := re.FindStringSubmatch(block); m != nil {
			defs[name] = m[1]
		} else {
			defs[name] = ""
		}
	}
	return defs
}

// TestProxyFlagDefaults (issue 10): the proxy command only wires flags to
// the packages' defaults: every flag that sets a Config field defaults to
// what balancer.DefaultConfig (and health's, and passthrough's) hold, so
// a package default that changes changes the command with it.
func TestProxyFlagDefaults(t *testing.T) {
	def := balancer.DefaultConfig()
	h := def.Health
	str := func(v any) string {
		s := fmt.Sprint(v)
		if s == "0" || s == "0s" || s == "false" {
			return "" // the help text omits zero defaults
		}
		return s
	}
	want := map[string]string{
		"max-conns": str(def.MaxConns), "max-conns-per-source": str(def.MaxConnsPerSource),
		"backend-conns": str(def.BackendConns), "dial-timeout": str(def.DialTimeout),
		"retry-budget": str(def.RetryBudget), "try-timeout": str(def.TryTimeout), "call-timeout": str(def.CallTimeout),
		"drain-delay": str(def.DrainDelay), "drain-grace": str(balancer.DefaultDrainGrace),
		"max-sessions": str(def.MaxSessions), "max-sessions-per-source": str(def.MaxSessionsPerSource),
		"max-sessions-per-conn": str(def.MaxSessionsPerConn), "session-idle": str(def.SessionIdle),
		"session-load-bound": str(def.SessionLoadBound),
		"access-log-sample":  str(def.AccessLogSample), "name": def.Name,
		"check-interval": str(h.Check.Interval), "check-timeout": str(h.Check.Timeout),
		"fall": str(h.Check.Fall), "rise": str(h.Check.Rise),
		"eject-consecutive": str(h.Outlier.ConsecutiveFailures), "eject-time": str(h.Outlier.BaseEjectionTime),
		"max-ejection-percent": str(h.Outlier.MaxEjectionPercent), "panic-threshold": str(h.PanicThreshold),
		"breaker-failure-rate": str(h.Breaker.FailureRate), "breaker-open-timeout": str(h.Breaker.OpenTimeout),
		"breaker-max-concurrent": str(h.Breaker.MaxConcurrent),
		"passthrough-key":        passthrough.DefaultConfig().Key.String(),
		"max-frame":              str(protocol.DefaultMaxFrame), "idle-timeout": str(protocol.DefaultIdleTimeout),
		"max-module-calls": str(def.MaxModuleCalls), "auth-jwt-leeway": str(credential.DefaultLeeway),
	}
	got := flagDefaults(t, "proxy")
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("--%s: no such flag", name)
			continue
		}
		if g != w {
			t.Errorf("--%s defaults to %q, the package default is %q", name, g, w)
		}
	}
}

// TestSessionLoadBoundFlag: --session-load-bound reaches the proxy's
// placement: with a tight bound, 30 new sessions over three gateways leave
// none of them holding more than ceil(1.01 × 10) = 11.
func TestSessionLoadBoundFlag(t *testing.T) {
	var args []string
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		g := startGW(t, name)
		args = append(args, "--backend", fmt.Sprintf("tcp://%s#name=%s", g.Addr.TCP, name))
	}
	p := startProxyProc(t, append(args, "--session-load-bound", "0.01")...)
	c := dialT(t, "tcp://"+p.Addr.TCP)
	ctx := ctxT(t)
	for i := range 30 {
		obj, err := c.NewSession().New(ctx, "cart@1", "Cart")
		if err != nil {
			t.Fatalf("cart %d: %v", i, err)
		}
		if _, err := obj.Call(ctx, "AddItem", "pen", int64(1)); err != nil {
			t.Fatalf("cart %d: AddItem: %v", i, err)
		}
	}
	var total int64
	for _, m := range getPool(t, p.Addr.Admin) {
		total += m.Sessions
		if m.Sessions > 11 {
			t.Errorf("gateway %s holds %d of 30 sessions, want at most 11", m.Name, m.Sessions)
		}
	}
	if total != 30 {
		t.Errorf("the pool holds %d sessions, want 30", total)
	}
}
