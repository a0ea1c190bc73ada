package admin

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
)

// TestUnfinishedRequestsAreClosed (issue 9, defect 11): a request that
// never finishes gets 408 and is closed after the read timeout, and
// connections beyond MaxConns get 503 at once, instead of being held open.
func TestUnfinishedRequestsAreClosed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := New(nil, Limits{ReadTimeout: timeout})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unfinished := []byte("GET /healthz HTTP/1.1\r\nHost: admin\r\n") // no blank line
	begin := time.Now()
	status, br, nc := gatewaytest.RawHTTP(t, s.Addr(), unfinished)
	if status != http.StatusRequestTimeout {
		t.Fatalf("unfinished request answered %d, want 408", status)
	}
	gatewaytest.ExpectClosed(t, nc, br, 2*time.Second)
	if d := time.Since(begin); d < timeout/2 || d > timeout+2*time.Second {
		t.Fatalf("closed after %v, read timeout %v", d, timeout)
	}

	// Four connections hold every slot (for the default 10s); a fifth is
	// refused at once.
	s = New(nil, Limits{MaxConns: 4})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 4 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(unfinished)
	}
	status, _, _ = gatewaytest.RawHTTP(t, s.Addr(), []byte("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("a fifth connection with 4 allowed got %d, want 503", status)
	}
}

// TestOversizeHeader (issue 9, defect 11): a 256 KiB request header gets
// 431 and a clean close, not a reset.
func TestOversizeHeader(t *testing.T) {
	s := New(nil, Limits{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := gatewaytest.HTTPAbuses[len(gatewaytest.HTTPAbuses)-1]
	status, br, nc := gatewaytest.RawHTTP(t, s.Addr(), big.Request)
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("answered %d, want 431", status)
	}
	gatewaytest.ExpectClosed(t, nc, br, 5*time.Second)
}
