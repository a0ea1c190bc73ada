package listener

import (
	"bytes"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
)

// lockedBuf is a log sink for the connection goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTLSListener: Accept hands over connections before their handshake,
// so a silent client holds up no one; a client that fails its handshake
// gets its connection closed, and a flood of them is logged once per
// RefusalLogInterval; a TLS client is served meanwhile.
func TestTLSListener(t *testing.T) {
	ca := tlstest.NewCA(t, "listener")
	srv := ca.Server(t, "srv")
	var logs lockedBuf
	log := zerolog.New(&logs)
	lns, err := Bind("127.0.0.1:0", "", ProxyProtocol{}, time.Second,
		&TLS{Config: &tls.Config{Certificates: []tls.Certificate{srv.TLS(t)}}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Serve(lns.TCP(), stop, &log, func(nc net.Conn) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				if HandshakeWithin(nc, 2*time.Second) != nil {
					return
				}
				_, _ = nc.Write([]byte("ok"))
				var b [1]byte
				_, _ = nc.Read(b[:]) // until the client closes
			}()
		})
	}()
	defer func() {
		close(stop)
		lns.Close()
		wg.Wait()
	}()
	addr := lns.Addrs().TCP

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for range 3 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = nc.Write([]byte("HELLO, not TLS\r\n\r\n"))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [512]byte
		for {
			if _, err := nc.Read(b[:]); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("a failed handshake left its connection open")
				}
				break
			}
		}
		_ = nc.Close()
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a TLS client behind a silent one: %v", err)
	}
	var b [2]byte
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(b[:]); err != nil || string(b[:]) != "ok" {
		t.Fatalf("TLS client read %q, %v", b, err)
	}
	_ = c.Close()
	if n := strings.Count(logs.String(), "TLS handshake failed"); n != 1 {
		t.Fatalf("3 failed handshakes were logged %d times, want once per interval:\n%s", n, logs.String())
	}
}
