package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
)

// ParseTarget normalises a target address: tcp://host:port, tls://host:port
// (the same inside TLS), ws://host:port (the path defaults to /ws),
// wss://host:port (WebSocket over TLS), or a bare host:port meaning TCP.
func ParseTarget(target string) (*url.URL, error) {
	if !strings.Contains(target, "://") {
		target = "tcp://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("client: target %q: %w", target, err)
	}
	switch u.Scheme {
	case "tcp", "tls":
		if u.Path != "" {
			return nil, fmt.Errorf("client: target %q: %s takes no path", target, u.Scheme)
		}
	case "ws", "wss":
		if u.Path == "" {
			u.Path = protocol.WSPath
		}
	default:
		return nil, fmt.Errorf("client: target %q: scheme must be tcp, tls, ws or wss", target)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: target %q: no host:port", target)
	}
	return u, nil
}

// dialTransport opens the socket (and the WebSocket upgrade) for u.
func dialTransport(ctx context.Context, u *url.URL, o Options) (*protocol.Conn, error) {
	co := protocol.ConnOptions{Limits: o.Limits}
	if u.Scheme == "tcp" || u.Scheme == "tls" {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		if u.Scheme == "tls" {
			tc := tls.Client(nc, tlsfiles.ForHost(o.TLS, u.Hostname()))
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = nc.Close()
				return nil, fmt.Errorf("client: TLS handshake with %s: %w", u.Host, err)
			}
			nc = tc
		}
		return protocol.NewStreamConn(nc, co), nil
	}
	d := websocket.Dialer{HandshakeTimeout: o.DialTimeout, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
		Subprotocols: []string{protocol.WSSubprotocol}}
	if u.Scheme == "wss" {
		d.TLSClientConfig = tlsfiles.ForHost(o.TLS, u.Hostname())
	}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return protocol.NewWSConn(ws, co), nil
}

// handshake sends HELLO and waits for WELCOME.
func handshake(pc *protocol.Conn, o Options, session protocol.SessionID, resume bool) (protocol.SessionID, protocol.Welcome, error) {
	var w protocol.Welcome
	body, err := protocol.Marshal(protocol.Hello{Client: o.Name, Credential: o.Credential, MaxFrame: uint32(o.Limits.MaxFrame)})
	if err != nil {
		return session, w, err
	}
	f := protocol.Frame{Type: protocol.TypeHello, Session: session, Body: body}
	if resume {
		f.Flags = protocol.FlagResume
	}
	if err := pc.Send(&f); err != nil {
		return session, w, err
	}
	_ = pc.SetReadDeadline(time.Now().Add(o.DialTimeout))
	b, err := pc.ReadFrame()
	if err != nil {
		return session, w, fmt.Errorf("client: waiting for WELCOME: %w", err)
	}
	_ = pc.SetReadDeadline(time.Time{})
	var r protocol.Frame
	if err := protocol.Decode(b, &r); err != nil {
		return session, w, err
	}
	switch r.Type {
	case protocol.TypeWelcome:
	case protocol.TypeError:
		return session, w, protocol.ErrorFromBody(r.Body)
	default:
		return session, w, protocol.Errorf(protocol.CodeBadFrame, "expected WELCOME, got %s", r.Type)
	}
	if len(r.Body) > 0 {
		if err := protocol.Unmarshal(r.Body, &w); err != nil {
			return session, w, protocol.Errorf(protocol.CodeBadFrame, "WELCOME body: %v", err)
		}
	}
	if r.Session.IsZero() {
		return session, w, protocol.Errorf(protocol.CodeBadFrame, "WELCOME without a session id")
	}
	return r.Session, w, nil
}
