package passthrough

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/protocol"
	"github.com/valyala/fasthttp"
)

// The forwarding half of pass-through mode: reading a WebSocket request's
// head to find its key, dialing the backend, and splicing both ways.

func (p *Proxy) serveTCP(c net.Conn) {
	up, ok := p.dial(appendHost(nil, c.RemoteAddr()), false)
	if !ok {
		p.cfg.Logger.Warn().Str("client", c.RemoteAddr().String()).Msg("pass-through: no live backend; closing")
		return
	}
	p.splice(c, up)
}

// serveWS reads the request head, picks the backend from its key, and
// forwards the head unchanged followed by everything else.
func (p *Proxy) serveWS(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(p.cfg.HeadTimeout))
	br := bufio.NewReaderSize(c, maxRequestHead)
	head, err := readHead(br)
	if err != nil {
		if errors.Is(err, errHeadTooLarge) {
			writeHTTPError(c, http.StatusRequestHeaderFieldsTooLarge, "request head too large")
			// The client may still be sending it: a plain close would
			// reset the connection and lose the answer.
			_ = httpserver.LingerClose(c)
			return
		}
		writeHTTPError(c, http.StatusBadRequest, "bad request head")
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(bytes.NewReader(head))); err != nil {
		writeHTTPError(c, http.StatusBadRequest, "bad request head")
		return
	}
	var uri fasthttp.URI
	if err := uri.Parse(h.Host(), h.RequestURI()); err != nil {
		writeHTTPError(c, http.StatusBadRequest, "bad request URI")
		return
	}
	key, _ := p.cfg.Key.Extract(nil, &h, &uri, c.RemoteAddr())
	up, ok := p.dial(key, true)
	if !ok {
		p.cfg.Logger.Warn().Str("client", c.RemoteAddr().String()).Msg("pass-through: no live backend; answering 503")
		writeHTTPError(c, http.StatusServiceUnavailable, "no live gateway")
		return
	}
	// The head and whatever the client sent after it, then the rest.
	rest, _ := br.Peek(br.Buffered())
	if _, err := up.Write(append(head, rest...)); err != nil {
		_ = up.Close()
		return
	}
	_, _ = br.Discard(len(rest))
	p.splice(c, up)
}

var errHeadTooLarge = errors.New("request head too large")

// readHead returns the request head up to and including the blank line,
// consuming it from br (whose buffer is maxRequestHead bytes).
func readHead(br *bufio.Reader) ([]byte, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			head := append([]byte(nil), b[:i+4]...)
			_, _ = br.Discard(i + 4)
			return head, nil
		}
		if len(b) >= maxRequestHead {
			return nil, errHeadTooLarge
		}
		// Wait for at least one more byte.
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

func writeHTTPError(c net.Conn, code int, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
}

// splice copies both ways until either side ends or the connection idles
// past IdleTimeout, then closes both.
func (p *Proxy) splice(client, up net.Conn) {
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, copyBuffer)
		for {
			_ = src.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				if end, _ := protocol.ClassifyRead(err); end == protocol.ReadTimeout &&
					time.Since(time.Unix(0, last.Load())) < p.cfg.IdleTimeout {
					continue // the other direction is busy
				}
				break
			}
		}
		done <- struct{}{}
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		cp(up, client)
		// The client ended: so does the connection (closing up wakes the
		// other direction, which would otherwise wait for the backend).
		_ = up.Close()
	}()
	cp(client, up)
	_ = client.Close()
	_ = up.Close()
	<-done
	<-done
}

func appendHost(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return append(dst, ta.IP...)
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return append(dst, a.String()...)
	}
	return append(dst, host...)
}
