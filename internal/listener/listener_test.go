package listener

import (
	"bytes"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func tcpAddr(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }

// TestAdmission: the cap per source counts IPv4 addresses one by one and
// IPv6 addresses by /64; the total cap holds across sources; a release
// makes room again; a refusal says why; and a flood of refusals of one
// kind is logged once per RefusalLogInterval, counting the rest.
func TestAdmission(t *testing.T) {
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	var now atomic.Int64
	a := NewAdmission(4, 2, &log, now.Load)
	admit := func(ip string, want bool) string {
		t.Helper()
		why, ok := a.Admit(tcpAddr(ip))
		if ok != want {
			t.Fatalf("Admit(%s) = %v (%q), want %v", ip, ok, why, want)
		}
		return why
	}
	admit("10.0.0.1", true)
	admit("10.0.0.1", true)
	if why := admit("10.0.0.1", false); !strings.Contains(why, "10.0.0.1") || !strings.Contains(why, "2 per source") {
		t.Errorf("refusal %q names neither the source nor the cap", why)
	}
	admit("2001:db8::1", true)
	admit("2001:db8::2", true) // the same /64
	admit("2001:db8::3", false)
	admit("10.0.0.2", false) // the total cap: 4 admitted
	if got := a.Conns(); got != 4 {
		t.Fatalf("Conns = %d, want 4", got)
	}
	a.Release(tcpAddr("10.0.0.1"))
	admit("10.0.0.1", true)
	a.Release(tcpAddr("2001:db8::1"))
	admit("10.0.0.3", true)

	perSource := strings.Count(logs.String(), "connection limit per source reached")
	full := strings.Count(logs.String(), `"connection limit reached; refusing"`)
	if perSource != 1 || full != 1 {
		t.Fatalf("logged %d per-source and %d total refusals within one interval, want 1 and 1:\n%s", perSource, full, logs.String())
	}
	now.Add(int64(RefusalLogInterval))
	admit("10.0.0.1", false) // per source again: one was not logged
	if !strings.Contains(logs.String(), `"suppressed":1`) {
		t.Fatalf("the line after the interval does not count the suppressed refusal:\n%s", logs.String())
	}
}

// TestAdmissionNoSource: a connection without an IP address (a pipe) has
// no source and counts only against the total cap; a negative cap per
// source counts nothing by source.
func TestAdmissionNoSource(t *testing.T) {
	nop := zerolog.Nop()
	a := NewAdmission(2, 1, &nop, nil)
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	for range 2 {
		if _, ok := a.Admit(p1.RemoteAddr()); !ok {
			t.Fatal("a pipe was refused under the total cap")
		}
	}
	if _, ok := a.Admit(p1.RemoteAddr()); ok {
		t.Fatal("a pipe was admitted over the total cap")
	}
	b := NewAdmission(10, -1, &nop, nil)
	for range 3 {
		if _, ok := b.Admit(tcpAddr("10.0.0.1")); !ok {
			t.Fatal("refused by source with no cap per source")
		}
	}
}

// TestServe: Serve hands every accepted connection to handle and returns
// once the listener closes.
func TestServe(t *testing.T) {
	lns, err := Bind("127.0.0.1:0", "", ProxyProtocol{}, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := lns.Addrs(); a.TCP == "" || a.WS != "" {
		t.Fatalf("Addrs = %+v, want only TCP", a)
	}
	got := make(chan net.Conn, 1)
	done := make(chan struct{})
	nop := zerolog.Nop()
	go func() {
		defer close(done)
		Serve(lns.TCP(), make(chan struct{}), &nop, func(c net.Conn) { got <- c })
	}()
	c, err := net.Dial("tcp", lns.Addrs().TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		_ = sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection handed over")
	}
	lns.Close()
	lns.Close() // idempotent
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the listener closed")
	}
}

// TestBind: an address that cannot be bound fails Bind and leaves nothing
// bound; no address at all is an error; a nil Pair has no addresses.
func TestBind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	_ = free.Close()
	if _, err := Bind(freeAddr, taken.Addr().String(), ProxyProtocol{}, time.Second, nil); err == nil {
		t.Fatal("Bind on a taken address succeeded")
	}
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("the first listener stayed bound after Bind failed: %v", err)
	}
	_ = ln.Close()
	if _, err := Bind("", "", ProxyProtocol{}, time.Second, nil); err == nil {
		t.Fatal("Bind with no address succeeded")
	}
	var p *Pair
	if a := p.Addrs(); a != (Addrs{}) {
		t.Fatalf("nil Pair has addresses %+v", a)
	}
	p.Close()
}
