package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
)

// TestTLSProcesses: a gateway process that requires client certificates
// behind a proxy process with TLS on its listeners and mTLS to the
// gateway; `graftlb call` reaches the gateway through the proxy over
// tls:// and wss:// trusting --tls-ca or SSL_CERT_FILE, and fails trusting
// another CA; a proxy reaches a tls:// backend trusting SSL_CERT_FILE;
// `graftlb bench` runs over tls://.
func TestTLSProcesses(t *testing.T) {
	ca := tlstest.NewCA(t, "procs")
	gwCert, proxyCert, proxyClient := ca.Server(t, "gw"), ca.Server(t, "proxy"), ca.Client(t, "proxy")
	gw := startGW(t, "gw1", "--tls-cert", gwCert.CertFile, "--tls-key", gwCert.KeyFile, "--tls-client-ca", ca.File)
	p := startProxyProc(t, "--backend", "tls://"+gw.Addr.TCP+"#name=gw1",
		"--tls-cert", proxyCert.CertFile, "--tls-key", proxyCert.KeyFile,
		"--backend-tls-ca", ca.File, "--backend-tls-cert", proxyClient.CertFile, "--backend-tls-key", proxyClient.KeyFile)
	call := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(proctest.Binary(t), append([]string{"call"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, target := range []string{"tls://" + p.Addr.TCP, "wss://" + p.Addr.WS + "/ws"} {
		out, err := call(nil, "--target", target, "--tls-ca", ca.File, "orders@1.Orders.GetOrder", `["o-1"]`)
		if err != nil || !strings.Contains(out, `"gw1"`) {
			t.Fatalf("call %s --tls-ca: %v\n%s", target, err, out)
		}
		out, err = call(envWith("SSL_CERT_FILE="+ca.File), "--target", target, "orders@1.Orders.GetOrder", `["o-1"]`)
		if err != nil || !strings.Contains(out, `"gw1"`) {
			t.Fatalf("call %s with SSL_CERT_FILE: %v\n%s", target, err, out)
		}
		other := tlstest.NewCA(t, "other")
		if out, err := call(nil, "--target", target, "--tls-ca", other.File, "orders@1.Orders.GetOrder", `["o-1"]`); err == nil {
			t.Fatalf("call %s trusting another CA succeeded:\n%s", target, out)
		}
	}
	// A tls:// backend alone says TLS: the proxy trusts SSL_CERT_FILE.
	gw2 := startGW(t, "gw2", "--tls-cert", gwCert.CertFile, "--tls-key", gwCert.KeyFile)
	p2 := proctest.StartEnv(t, envWith("SSL_CERT_FILE="+ca.File), "proxy", "--tcp", "127.0.0.1:0", "--ws", "",
		"--admin", "", "--log-format", "json", "--backend", "tls://"+gw2.Addr.TCP+"#name=gw2")
	if out, err := call(nil, "--target", "tcp://"+p2.Addr.TCP, "orders@1.Orders.GetOrder", `["o-1"]`); err != nil ||
		!strings.Contains(out, `"gw2"`) {
		t.Fatalf("call through a proxy to a tls:// backend: %v\n%s", err, out)
	}
	cmd := exec.Command(proctest.Binary(t), "bench", "--target", "tls://"+p.Addr.TCP, "--tls-ca", ca.File,
		"--duration", "1s", "--conns", "1", "--concurrency", "2")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "VIOLATION") {
		t.Fatalf("bench over tls://: %v\n%s", err, out)
	}
}

// TestHandoffOverMutualTLSProcesses: two gossiping gateway processes that
// require client certificates (--tls-client-ca) behind a proxy with mTLS
// to them; SIGTERM gw1: its cart sessions move to gw2 over links on which
// gw1 presents its --tls-cert, and read back there exactly.
func TestHandoffOverMutualTLSProcesses(t *testing.T) {
	ca := tlstest.NewCA(t, "pool")
	proxyClient := ca.Client(t, "proxy")
	key := newKey()
	p := startProxyProc(t, "--gossip", "127.0.0.1:0", "--gossip-key", key,
		"--backend-tls-ca", ca.File, "--backend-tls-cert", proxyClient.CertFile, "--backend-tls-key", proxyClient.KeyFile)
	c := &gossipCluster{key: key, proxy: p, gws: map[string]*proctest.Proc{}}
	for _, name := range []string{"gw1", "gw2"} {
		pair := ca.Peer(t, name)
		c.join(t, name, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile, "--tls-client-ca", ca.File,
			"--tls-ca", ca.File, "--drain-grace", "10s")
	}
	c.waitPool(t, "gw1", "gw2")
	conn := dialT(t, "tcp://"+p.Addr.TCP)
	var onGW1 []testgw.CartSession
	for _, cs := range testgw.BuildCarts(t, conn, 16) {
		if cs.Owner == "gw1" {
			onGW1 = append(onGW1, cs)
		}
	}
	if len(onGW1) == 0 {
		t.Fatal("no cart session on gw1 out of 16")
	}
	if err := c.gws["gw1"].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	drainStart := time.Now()
	if code, ok := c.gws["gw1"].Wait(30 * time.Second); !ok || code != 0 {
		t.Fatalf("gw1 exit: code %d, exited %v; stderr:\n%s", code, ok, c.gws["gw1"].Stderr())
	}
	t.Logf("gw1 handed %d sessions over and exited %v after SIGTERM", len(onGW1), time.Since(drainStart).Round(time.Millisecond))
	if moved := movedInLog(c.gws["gw1"].Stderr()); moved != len(onGW1) {
		t.Fatalf("gw1 moved %d sessions, want its %d; stderr:\n%s", moved, len(onGW1), c.gws["gw1"].Stderr())
	}
	for _, cs := range onGW1 {
		cs.Owner = "gw2"
		if _, err := testgw.VerifyCart(ctxT(t), conn, cs); err != nil {
			t.Fatalf("session %s after the move: %v", cs.ID, err)
		}
	}
}
