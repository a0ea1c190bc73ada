package balancer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
	"github.com/graftlb/graftlb/protocol"
)

// tlsTargets are the proxy's client targets over TLS.
func tlsTargets(p *Proxy) map[string]string {
	a := p.Addrs()
	return map[string]string{"tls": "tls://" + a.TCP, "wss": "wss://" + a.WS + "/ws"}
}

// dialTLS opens a client connection with conf as its TLS configuration.
func dialTLS(t *testing.T, target string, conf *tls.Config) (*client.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, target, client.Options{TLS: conf, DialTimeout: 5 * time.Second})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

func mustCall(t *testing.T, c *client.Conn, what string) {
	t.Helper()
	if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("%s: call: %v", what, err)
	}
}

// servedSerial handshakes with addr over TCP and returns the serial of the
// leaf certificate it serves.
func servedSerial(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, tlsfiles.ForHost(conf, "127.0.0.1"))
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSClientListeners: with a certificate the TCP listener speaks TLS
// and the WS listener is wss://; calls go through both; a client that
// trusts another CA, or one that speaks plain Hypertube, is refused, and
// silent connections that never finish a handshake hold up neither the
// accept loop nor other clients.
func TestTLSClientListeners(t *testing.T) {
	ca, other := tlstest.NewCA(t, "proxy"), tlstest.NewCA(t, "other")
	srv := ca.Server(t, "proxy")
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile}
		c.Limits.HelloTimeout = 2 * time.Second
	})
	// Silent clients first: each holds a handshake open until the HELLO
	// timeout.
	for range 5 {
		nc, err := net.Dial("tcp", p.Addrs().TCP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
	}
	trust := tlstest.ClientConfig(t, ca, nil)
	for kind, target := range tlsTargets(p) {
		c, err := dialTLS(t, target, trust)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		mustCall(t, c, kind)
		if _, err := dialTLS(t, target, tlstest.ClientConfig(t, other, nil)); err == nil {
			t.Errorf("%s: a client trusting another CA connected", kind)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c, err := client.Dial(ctx, "tcp://"+p.Addrs().TCP, client.Options{DialTimeout: 2 * time.Second}); err == nil {
		_ = c.Close()
		t.Error("a plain client connected to the TLS listener")
	}
}

// TestTLSMutual: with a client CA, a client with a certificate from it is
// served on both listeners; one without a certificate, or with one from
// another CA, is refused.
func TestTLSMutual(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	srv, alice, mallory := ca.Server(t, "proxy"), ca.Client(t, "alice"), other.Client(t, "mallory")
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile, ClientCA: ca.File}
	})
	for kind, target := range tlsTargets(p) {
		c, err := dialTLS(t, target, tlstest.ClientConfig(t, ca, &alice))
		if err != nil {
			t.Fatalf("%s with a client certificate: %v", kind, err)
		}
		mustCall(t, c, kind)
		for name, cert := range map[string]*tlstest.Pair{"no": nil, "another CA's": &mallory} {
			if c, err := dialTLS(t, target, tlstest.ClientConfig(t, ca, cert)); err == nil {
				// TLS 1.3 reports a refused client certificate at the
				// first read: a call must fail.
				if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err == nil {
					t.Errorf("%s: a client with %s certificate was served", kind, name)
				}
			}
		}
	}
}

// TestTLSBackends: gateways with TLS that require client certificates are
// reached by a proxy with backend TLS and a client certificate, directly
// by a client over tls:// and wss://, and not by a proxy without the
// client certificate.
func TestTLSBackends(t *testing.T) {
	ca := tlstest.NewCA(t, "pool")
	gwCert, proxyCert := ca.Server(t, "gw"), ca.Client(t, "proxy")
	gs := startGateways(t, 2, func(c *gateway.Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: gwCert.CertFile, Key: gwCert.KeyFile, ClientCA: ca.File}
	})
	if !gs[0].Addrs().TLS {
		t.Fatal("a gateway with TLS does not say so in its Addrs")
	}
	p := startProxy(t, gs, func(c *Config) {
		c.BackendTLS = tlsfiles.ClientFiles{CA: ca.File, Cert: proxyCert.CertFile, Key: proxyCert.KeyFile}
	})
	for kind, target := range proxyTargets(p) {
		mustCall(t, dialProxy(t, target), "through the proxy over "+kind)
	}
	a := gs[0].Addrs()
	for kind, target := range map[string]string{"tls": "tls://" + a.TCP, "wss": "wss://" + a.WS + "/ws"} {
		c, err := dialTLS(t, target, tlstest.ClientConfig(t, ca, &proxyCert))
		if err != nil {
			t.Fatalf("gateway over %s: %v", kind, err)
		}
		mustCall(t, c, "gateway over "+kind)
	}

	// Without its client certificate the proxy reaches no gateway.
	cfg := Config{TCP: "127.0.0.1:0", PoolSettle: -1, DialTimeout: time.Second,
		BackendTLS: tlsfiles.ClientFiles{CA: ca.File}}
	bare, err := New(cfg, staticOf(gs))
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if err := bare.Start(); err != nil {
		t.Fatal(err)
	}
	c := dialProxy(t, "tcp://"+bare.Addrs().TCP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err == nil {
		t.Fatal("a proxy without a client certificate reached a gateway that requires one")
	}
}

// TestTLSReload: replacing the certificate files while clients are
// connected serves the new certificate to new handshakes (within a second
// or two) while the connected clients go on calling; a broken new pair
// keeps the old certificate; ReloadTLS loads a new one at once.
func TestTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t, "reload")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	first := ca.Server(t, "first")
	first.Install(t, certFile, keyFile)
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) { c.TLS = tlsfiles.ServerFiles{Cert: certFile, Key: keyFile} })
	trust := tlstest.ClientConfig(t, ca, nil)
	var conns []*client.Conn
	for kind, target := range tlsTargets(p) {
		c, err := dialTLS(t, target, trust)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		mustCall(t, c, kind)
		conns = append(conns, c)
	}
	if got := servedSerial(t, p.Addrs().TCP, trust); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("served %s, want the first certificate %s", got, first.Leaf.SerialNumber)
	}

	second := ca.Server(t, "second")
	second.Install(t, certFile, keyFile)
	proctest.Eventually(t, 10*time.Second, "new handshakes get the replaced certificate", func() bool {
		return servedSerial(t, p.Addrs().TCP, trust) == second.Leaf.SerialNumber.String()
	})
	for i, c := range conns {
		mustCall(t, c, fmt.Sprintf("connection %d after the reload", i))
	}

	tlstest.Replace(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	if err := p.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS of a broken certificate succeeded")
	}
	if got := servedSerial(t, p.Addrs().TCP, trust); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("with a broken file: served %s, want the previous %s", got, second.Leaf.SerialNumber)
	}
	if c, err := dialTLS(t, tlsTargets(p)["wss"], trust); err != nil {
		t.Fatalf("wss with a broken file: %v", err)
	} else {
		mustCall(t, c, "wss with a broken file")
	}

	third := ca.Server(t, "third")
	third.Install(t, certFile, keyFile)
	if err := p.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := servedSerial(t, p.Addrs().TCP, trust); got != third.Leaf.SerialNumber.String() {
		t.Fatalf("after ReloadTLS: served %s, want %s", got, third.Leaf.SerialNumber)
	}
	for i, c := range conns {
		mustCall(t, c, fmt.Sprintf("connection %d at the end", i))
	}
}

// TestTLSAfterProxyProtocol: the PROXY protocol header comes in the clear
// before the TLS handshake, as HAProxy sends it; the client's address is
// the header's (the cap of one connection per source refuses a second
// one from it).
func TestTLSAfterProxyProtocol(t *testing.T) {
	ca := tlstest.NewCA(t, "pp")
	srv := ca.Server(t, "proxy")
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile}
		c.ProxyProtocol = ProxyProtocol{Enabled: true}
		c.MaxConnsPerSource = 1
	})
	hello := func() (*protocol.Conn, protocol.Type) {
		nc, err := net.Dial("tcp", p.Addrs().TCP)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte("PROXY TCP4 198.51.100.7 127.0.0.1 40000 9990\r\n")); err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(nc, tlsfiles.ForHost(tlstest.ClientConfig(t, ca, nil), "127.0.0.1"))
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS after the PROXY header: %v", err)
		}
		pc := protocol.NewStreamConn(tc, protocol.ConnOptions{})
		t.Cleanup(pc.Abort)
		body, _ := protocol.Marshal(protocol.Hello{Client: "pp-test"})
		if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body}); err != nil {
			t.Fatal(err)
		}
		raw, err := pc.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for WELCOME: %v", err)
		}
		typ, _, _, _ := protocol.PeekHeader(raw)
		return pc, typ
	}
	if _, typ := hello(); typ != protocol.TypeWelcome {
		t.Fatalf("first connection got %s, want WELCOME", typ)
	}
	if _, typ := hello(); typ != protocol.TypeError {
		t.Fatalf("second connection from the header's source got %s, want ERROR (one per source)", typ)
	}
}

// TestTLSOpenSSL: openssl s_client, a peer that is not Go, completes a
// handshake with the proxy's TCP listener and verifies the certificate
// with the CA, with and without a client certificate required.
func TestTLSOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed (apt-get install openssl): %v", err)
	}
	ca := tlstest.NewCA(t, "openssl")
	srv, alice := ca.Server(t, "proxy"), ca.Client(t, "alice")
	gs := startGateways(t, 1, nil)
	for _, mutual := range []bool{false, true} {
		p := startProxy(t, gs, func(c *Config) {
			c.TLS = tlsfiles.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile}
			if mutual {
				c.TLS.ClientCA = ca.File
			}
		})
		args := []string{"s_client", "-connect", p.Addrs().TCP, "-CAfile", ca.File, "-verify_return_error",
			"-verify_ip", "127.0.0.1"}
		if mutual {
			args = append(args, "-cert", alice.CertFile, "-key", alice.KeyFile)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "Verify return code: 0 (ok)") {
			t.Fatalf("openssl s_client (mutual %v): %v\n%s", mutual, err, out)
		}
		if !strings.Contains(string(out), srv.Leaf.SerialNumber.Text(16)[:8]) && !strings.Contains(string(out), "CN=proxy") &&
			!strings.Contains(string(out), "CN = proxy") {
			t.Fatalf("openssl s_client did not see the proxy's certificate:\n%s", out)
		}
	}
}
