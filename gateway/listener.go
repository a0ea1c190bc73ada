package gateway

import (
	"errors"
	"fmt"
	"net"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/graftlb/graftlb/internal/httpserver"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/protocol"
)

// Start binds the configured listeners (an empty address leaves one off)
// and starts serving. On error nothing stays bound.
func (g *Gateway) Start() error {
	g.mu.Lock()
	if err := g.startLocked(); err != nil {
		g.mu.Unlock()
		return err
	}
	addrs := g.addrs
	g.mu.Unlock()
	g.transition(StateReady, StateNew)
	g.log.Info().Str("tcp", addrs.TCP).Str("ws", addrs.WS).Str("http", addrs.HTTP).Msg("listening")
	return nil
}

func (g *Gateway) startLocked() error {
	switch {
	case g.closing:
		return ErrClosed
	case g.started:
		return errors.New("gateway: already started")
	}
	var bound []net.Listener
	listen := func(kind, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, b := range bound {
				_ = b.Close()
			}
			return nil, fmt.Errorf("gateway: listen %s %s: %w", kind, addr, err)
		}
		bound = append(bound, ln)
		return ln, nil
	}
	tcpLn, err := listen("tcp", g.cfg.TCP)
	if err != nil {
		return err
	}
	wsLn, err := listen("ws", g.cfg.WS)
	if err != nil {
		return err
	}
	if tt := g.listenerTLS(); tt != nil {
		// The handshake runs on each connection's goroutine: for TCP in
		// acceptTCP, for WS inside fasthttp within HTTPReadTimeout.
		if tcpLn != nil {
			tcpLn = listener.WithTLS(tcpLn, tt)
		}
		if wsLn != nil {
			wsLn = listener.WithTLS(wsLn, tt)
		}
	}
	httpLn, err := listen("http", g.cfg.HTTP)
	if err != nil {
		return err
	}
	g.started = true
	g.addrs.TLS = g.tls != nil
	// wg.Add is safe here: closing is false under mu, so no Wait runs.
	if tcpLn != nil {
		g.tcpLn, g.addrs.TCP = tcpLn, tcpLn.Addr().String()
		g.wg.Add(1)
		go g.acceptTCP(tcpLn)
	}
	if wsLn != nil {
		g.wsLn, g.addrs.WS = wsLn, wsLn.Addr().String()
		// Upgraded connections count against MaxConns, not this cap.
		// The gateway closes WebSocket connections itself (Abort must
		// really close the socket), so fasthttp must not.
		g.wsSrv = httpserver.NewUpgrading("graftlb-gateway", g.handleWS, httpserver.Limits{ReadTimeout: g.cfg.HTTPReadTimeout,
			IdleTimeout: g.cfg.HTTPIdleTimeout, MaxConns: g.cfg.MaxConns + 16}, fasthttpLogger{g.log})
		g.wg.Add(1)
		go g.serveHTTP(g.wsSrv, wsLn)
	}
	if httpLn != nil {
		g.httpLn, g.addrs.HTTP = httpLn, httpLn.Addr().String()
		g.httpSrv = httpserver.New("graftlb-gateway", g.handleHTTP, httpserver.Limits{ReadTimeout: g.cfg.HTTPReadTimeout,
			IdleTimeout: g.cfg.HTTPIdleTimeout, MaxConns: g.cfg.HTTPMaxConns}, fasthttpLogger{g.log})
		g.wg.Add(1)
		go g.serveHTTP(g.httpSrv, httpLn)
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.sessions.runJanitor(g.stop, func(n int) {
			g.log.Debug().Int("sessions", n).Msg("idle sessions collected")
		})
	}()
	return nil
}

// acceptTCP accepts TCP connections until the listener closes. Owned by
// the gateway.
func (g *Gateway) acceptTCP(ln net.Listener) {
	defer g.wg.Done()
	listener.Serve(ln, g.stop, &g.log, func(nc net.Conn) {
		if !g.acquire() {
			_ = nc.Close() // closing: the listener is closed too
			return
		}
		go func() {
			defer g.wg.Done()
			if err := listener.HandshakeWithin(nc, g.cfg.Limits.HelloTimeout); err != nil {
				_ = nc.Close()
				return
			}
			g.serve(protocol.NewStreamConn(nc, g.connOpts), nc, nil, "tcp")
		}()
	})
}

// serveHTTP runs a fasthttp server until its listener closes.
func (g *Gateway) serveHTTP(s *fasthttp.Server, ln net.Listener) {
	defer g.wg.Done()
	if err := s.Serve(httpserver.Listen(ln)); err != nil && !errors.Is(err, net.ErrClosed) {
		g.log.Warn().Err(err).Str("addr", ln.Addr().String()).Msg("HTTP listener stopped")
	}
}

// handleWS upgrades GET /ws to the WebSocket binding and serves the
// connection on the goroutine fasthttp hands it to.
func (g *Gateway) handleWS(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != protocol.WSPath {
		ctx.Error("not found; the WebSocket binding is at "+protocol.WSPath, fasthttp.StatusNotFound)
		return
	}
	if !httpserver.CheckUpgrade(ctx) {
		g.log.Debug().Str("remote", ctx.RemoteAddr().String()).Msg("WebSocket upgrade refused: " + string(ctx.Response.Body()))
		return
	}
	if why := g.origins.CheckOrigin(ctx); why != "" {
		g.log.Warn().Str("remote", ctx.RemoteAddr().String()).Msg("WebSocket upgrade refused: " + why)
		return
	}
	err := g.upgrader.Upgrade(ctx, func(ws *websocket.Conn) {
		// The slot is taken here, not before Upgrade: fasthttp skips this
		// handler when it cannot write the 101 response.
		if !g.acquire() {
			_ = ws.NetConn().Close()
			return
		}
		defer g.wg.Done()
		g.serve(protocol.NewWSConn(ws, g.connOpts), ws.NetConn(), ws, "ws")
	})
	if err != nil {
		g.log.Debug().Err(err).Str("remote", ctx.RemoteAddr().String()).Msg("WebSocket upgrade refused")
	}
}

// fasthttpLogger sends fasthttp's own messages to zerolog at debug level.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug().Msgf("fasthttp: "+format, args...)
}

// listenerTLS is the TCP and WS listeners' TLS, nil when off.
func (g *Gateway) listenerTLS() *listener.TLS {
	if g.tls == nil {
		return nil
	}
	return &listener.TLS{Config: g.tls.Config(), Log: &g.log}
}

// ReloadTLS loads the listeners' certificate and key files again now
// (they are also reloaded on the first handshake a second after they
// change). On error the old pair stays in use. Without TLS it does
// nothing.
func (g *Gateway) ReloadTLS() error {
	if g.tls == nil {
		return nil
	}
	return g.tls.Reload()
}
