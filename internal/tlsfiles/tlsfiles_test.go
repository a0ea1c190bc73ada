package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
)

// fakeNow is a clock for the file checks.
type fakeNow struct{ ns atomic.Int64 }

func (f *fakeNow) now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeNow) advance(d time.Duration) { f.ns.Add(int64(d)) }

// handshake runs a real TLS handshake over loopback TCP against conf and
// returns the server certificate's serial as the client saw it.
func handshake(t *testing.T, server, client *tls.Config) (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer nc.Close()
		tc := tls.Server(nc, server)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		done <- tc.Handshake()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := tls.Client(nc, tlsfiles.ForHost(client, "127.0.0.1"))
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	cerr := tc.Handshake()
	serr := <-done
	if cerr != nil {
		return "", cerr
	}
	if serr != nil {
		return "", serr
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// installed installs p as the files of a server to be made, and returns
// them with a clock for its checks, set to now.
func installed(t *testing.T, p tlstest.Pair) (certFile, keyFile string, clk *fakeNow) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	p.Install(t, certFile, keyFile)
	clk = &fakeNow{}
	clk.ns.Store(time.Now().UnixNano())
	return certFile, keyFile, clk
}

// TestServerReload: replaced files are served from the first handshake
// after CheckInterval (not before); a broken new pair keeps the old one
// and is logged once however many handshakes follow; a repaired one is
// served again; Reload loads at once and reports a broken pair.
func TestServerReload(t *testing.T) {
	ca := tlstest.NewCA(t, "reload")
	first := ca.Server(t, "first")
	certFile, keyFile, clk := installed(t, first)
	// Logged on the server's handshake goroutine, which handshake waits
	// for: read after it, the buffer needs no lock.
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	s, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: certFile, Key: keyFile}, clk.now, &log)
	if err != nil {
		t.Fatal(err)
	}
	conf, client := s.Config(), tlstest.ClientConfig(t, ca, nil)
	want := func(p tlstest.Pair, when string) {
		t.Helper()
		got, err := handshake(t, conf, client)
		if err != nil {
			t.Fatalf("%s: handshake: %v", when, err)
		}
		if got != p.Leaf.SerialNumber.String() {
			t.Fatalf("%s: served serial %s, want %s", when, got, p.Leaf.SerialNumber)
		}
	}
	want(first, "at start")

	second := ca.Server(t, "second")
	second.Install(t, certFile, keyFile)
	want(first, "within CheckInterval of the last look")
	clk.advance(tlsfiles.CheckInterval)
	want(second, "after CheckInterval")

	tlstest.Replace(t, keyFile, []byte("not a key"))
	for range 3 {
		clk.advance(tlsfiles.CheckInterval)
		want(second, "with a broken key file")
	}
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Fatalf("a broken pair was logged %d times, want once:\n%s", n, logs.String())
	}
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of a broken pair succeeded")
	}
	want(second, "after a failed Reload")

	third := ca.Server(t, "third")
	third.Install(t, certFile, keyFile)
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	want(third, "after Reload, within CheckInterval")

	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.advance(tlsfiles.CheckInterval)
		want(third, "with the cert file gone")
	}
	if n := strings.Count(logs.String(), "unreadable"); n != 1 {
		t.Fatalf("missing files were logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestServerClientCA: with a client CA, a client with a certificate from
// it is served; one without a certificate, or with one from another CA,
// is refused by the server.
func TestServerClientCA(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	srv := ca.Server(t, "srv")
	s, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile, ClientCA: ca.File}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := ca.Client(t, "alice"), other.Client(t, "mallory")
	if _, err := handshake(t, s.Config(), tlstest.ClientConfig(t, ca, &good)); err != nil {
		t.Fatalf("a client with a trusted certificate: %v", err)
	}
	for name, cert := range map[string]*tlstest.Pair{"no certificate": nil, "another CA's": &bad} {
		if _, err := handshake(t, s.Config(), tlstest.ClientConfig(t, ca, cert)); err == nil {
			t.Errorf("a client with %s certificate was served", name)
		}
	}
}

// TestClientFiles: the client side trusts its CA file and no other, or
// the file SSL_CERT_FILE names when it has none; it refuses an expired
// server certificate; and it presents its client certificate.
func TestClientFiles(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	srv, expired := ca.Server(t, "srv"), ca.Expired(t, "old")
	serve := func(p tlstest.Pair) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{p.TLS(t)}}
	}
	conf, err := tlsfiles.ClientFiles{CA: ca.File}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, serve(srv), conf); err != nil {
		t.Fatalf("trusted server refused: %v", err)
	}
	if _, err := handshake(t, serve(expired), conf); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired server certificate: err = %v, want expired", err)
	}
	otherConf, err := tlsfiles.ClientFiles{CA: other.File}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, serve(srv), otherConf); err == nil {
		t.Fatal("a server from an untrusted CA was accepted")
	}
	t.Setenv("SSL_CERT_FILE", ca.File)
	sys, err := tlsfiles.ClientFiles{}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, serve(srv), sys); err != nil {
		t.Fatalf("SSL_CERT_FILE not honoured: %v", err)
	}

	alice := ca.Client(t, "alice")
	mconf, err := tlsfiles.ClientFiles{CA: ca.File, Cert: alice.CertFile, Key: alice.KeyFile}.Client()
	if err != nil {
		t.Fatal(err)
	}
	ms := serve(srv)
	ms.ClientAuth, ms.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
	if _, err := handshake(t, ms, mconf); err != nil {
		t.Fatalf("mTLS with a client certificate: %v", err)
	}
}

// TestValidate: incomplete sets of files are refused before any is read.
func TestValidate(t *testing.T) {
	for _, f := range []tlsfiles.ServerFiles{{Cert: "c"}, {Key: "k"}, {ClientCA: "ca"}} {
		if f.Validate() == nil {
			t.Errorf("%+v validated", f)
		}
	}
	if (tlsfiles.ServerFiles{}).Validate() != nil || (tlsfiles.ServerFiles{Cert: "c", Key: "k", ClientCA: "a"}).Validate() != nil {
		t.Error("a complete set was refused")
	}
	if (tlsfiles.ClientFiles{Cert: "c"}).Validate() == nil || (tlsfiles.ClientFiles{Key: "k"}).Validate() == nil {
		t.Error("a client cert without key validated")
	}
	if _, err := tlsfiles.NewServer(tlsfiles.ServerFiles{}, nil, nil); err == nil {
		t.Error("NewServer without files succeeded")
	}
	if _, err := tlsfiles.LoadPool(os.DevNull); err == nil {
		t.Error("an empty CA file loaded")
	}
}

// TestServerGetClientCertificate: a server's own pair, presented as its
// client certificate, follows the pair's reloads and is accepted by a
// server that requires a client certificate from the same CA when it has
// the clientAuth extended key usage (tlstest's Peer); a serverAuth-only
// certificate is refused.
func TestServerGetClientCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "peers")
	verifier := ca.Server(t, "verifier")
	vs, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: verifier.CertFile, Key: verifier.KeyFile, ClientCA: ca.File}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := ca.Peer(t, "first")
	certFile, keyFile, clk := installed(t, first)
	s, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: certFile, Key: keyFile}, clk.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	presented := func() string {
		t.Helper()
		c, err := s.GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	client := tlstest.ClientConfig(t, ca, nil)
	client.GetClientCertificate = s.GetClientCertificate
	if _, err := handshake(t, vs.Config(), client); err != nil {
		t.Fatalf("a serverAuth,clientAuth certificate presented as a client's: %v", err)
	}
	second := ca.Peer(t, "second")
	second.Install(t, certFile, keyFile)
	if got := presented(); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("within CheckInterval: presented %s, want the first pair's %s", got, first.Leaf.SerialNumber)
	}
	clk.advance(tlsfiles.CheckInterval)
	if got := presented(); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("after CheckInterval: presented %s, want the reloaded pair's %s", got, second.Leaf.SerialNumber)
	}

	ca.Server(t, "server-only").Install(t, certFile, keyFile)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, vs.Config(), client); err == nil {
		t.Fatal("a certificate without clientAuth was accepted as a client certificate")
	}
}
