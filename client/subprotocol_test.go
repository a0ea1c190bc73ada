package client_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

// TestDialOffersSubprotocol: the client's WebSocket handshake offers the
// binding's subprotocol (SPEC.md section 1), as a server on a real socket
// sees it.
func TestDialOffersSubprotocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	offered := make(chan []string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offered <- r.Header.Values("Sec-WebSocket-Protocol")
		http.Error(w, "refused by the test", http.StatusForbidden)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Dial(ctx, "ws://"+ln.Addr().String()+protocol.WSPath, client.Options{}); err == nil {
		t.Fatal("Dial succeeded against a server that refuses every upgrade")
	}
	select {
	case got := <-offered:
		if len(got) != 1 || got[0] != protocol.WSSubprotocol {
			t.Fatalf("Sec-WebSocket-Protocol = %q, want %q", got, protocol.WSSubprotocol)
		}
	default:
		t.Fatal("the handshake did not reach the server")
	}
}
