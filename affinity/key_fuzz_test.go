package affinity

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzKeyExtract parses a WebSocket upgrade request head as pass-through
// mode does (package passthrough's serveWS: fasthttp's header parser, then the URI
// from Host and the request URI) and extracts a key of every kind named
// name from it. Extraction must not panic, must give the same key twice
// (fasthttp's scratch buffers are reused), keep what dst held, and find a
// key no longer than the head it came from; a missing key falls back to
// the client address.
func FuzzKeyExtract(f *testing.F) {
	heads := []string{
		"GET /ws?session=s-1 HTTP/1.1\r\nHost: lb:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"X-Session: h-1\r\nCookie: sid=c-1; other=2\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /ws?session=%41%zz&session=two&=x HTTP/1.1\r\nHost: [::1]:80\r\nCookie: sid=\"quoted\"; sid=again\r\n\r\n",
		"GET http://other/ws?session=abs HTTP/1.1\r\nHost: lb\r\nX-Session: a\r\nX-Session: b\r\n\r\n",
		"GET /ws HTTP/1.0\r\n\r\n",
		"GET /ws?session HTTP/1.1\r\nHost: lb\r\nCookie: =; ;sid\r\n\r\n",
	}
	for _, h := range heads {
		f.Add([]byte(h), "session")
		f.Add([]byte(h), "sid")
		f.Add([]byte(h), "X-Session")
	}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5555}
	f.Fuzz(func(t *testing.T, head []byte, name string) {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(bytes.NewReader(head))); err != nil {
			return
		}
		var uri fasthttp.URI
		if err := uri.Parse(h.Host(), h.RequestURI()); err != nil {
			return
		}
		for _, kind := range []string{"query", "header", "cookie"} {
			k, err := ParseKeySource(kind + ":" + name)
			if err != nil {
				continue
			}
			key, fallback := k.Extract([]byte("prefix/"), &h, &uri, remote)
			again, fallback2 := k.Extract(nil, &h, &uri, remote)
			if !bytes.HasPrefix(key, []byte("prefix/")) {
				t.Fatalf("%s: Extract dropped dst: %q", k, key)
			}
			key = key[len("prefix/"):]
			if !bytes.Equal(key, again) || fallback != fallback2 {
				t.Fatalf("%s: Extract gave %q (fallback %v), then %q (%v)", k, key, fallback, again, fallback2)
			}
			switch {
			case fallback && string(key) != "192.0.2.7":
				t.Fatalf("%s: fell back to %q, want the client address", k, key)
			case !fallback && len(key) == 0:
				t.Fatalf("%s: an empty key without fallback", k)
			case !fallback && len(key) > len(head):
				t.Fatalf("%s: a key of %d bytes from a head of %d", k, len(key), len(head))
			}
		}
	})
}
