package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// originCluster is a gateway and a proxy in front of it, both run with
// --ws-allowed-origins allowed.
func originCluster(t *testing.T, allowed string) (gw, px *proctest.Proc) {
	t.Helper()
	gw = startGW(t, "gw1", "--modules", "orders", "--ws-allowed-origins", allowed)
	px = startProxyProc(t, "--backend", "tcp://"+gw.Addr.TCP+"#name=gw1,modules=orders@1", "--ws-allowed-origins", allowed)
	return gw, px
}

// wsHello opens a WebSocket to addr's /ws offering the hypertube.v1
// subprotocol, sending origin ("" sends no Origin header). On a refused
// handshake it returns the HTTP status and body; on a completed one it
// says HELLO, checks the WELCOME and returns 101 with the selected
// subprotocol.
func wsHello(t *testing.T, addr, origin string) (status int, body string) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{protocol.WSSubprotocol}}
	ws, resp, err := d.Dial("ws://"+addr+protocol.WSPath, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s with Origin %q: %v", addr, origin, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pc := protocol.NewWSConn(ws, protocol.ConnOptions{})
	defer pc.Close()
	hello, _ := protocol.Marshal(protocol.Hello{Client: "origin-test"})
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Body: hello}); err != nil {
		t.Fatalf("send HELLO: %v", err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := pc.ReadFrame()
	var f protocol.Frame
	if err != nil || protocol.Decode(b, &f) != nil || f.Type != protocol.TypeWelcome {
		t.Fatalf("%s with Origin %q: no WELCOME after the upgrade: %v", addr, origin, err)
	}
	return http.StatusSwitchingProtocols, ws.Subprotocol()
}

// TestWSAllowedOrigins: the gateway's and the proxy's WebSocket listeners
// apply --ws-allowed-origins alike. A request without Origin (not a
// browser), from the listener's own host, or from an allowed origin is
// upgraded and selects hypertube.v1; any other origin gets 403 with a body
// that says why, and the process logs the reason.
func TestWSAllowedOrigins(t *testing.T) {
	gw, px := originCluster(t, "https://*.example.com")
	for _, p := range []struct {
		name string
		proc *proctest.Proc
	}{{"gateway", gw}, {"proxy", px}} {
		addr := p.proc.Addr.WS
		for _, tc := range []struct {
			origin string
			ok     bool
		}{
			{"", true},
			{"http://" + addr, true},
			{"https://app.example.com", true},
			{"https://example.com", false},
			{"https://evil.test", false},
			{"null", false},
		} {
			status, body := wsHello(t, addr, tc.origin)
			switch {
			case tc.ok && (status != http.StatusSwitchingProtocols || body != protocol.WSSubprotocol):
				t.Errorf("%s, Origin %q: status %d, subprotocol %q; want 101 with %s", p.name, tc.origin, status, body, protocol.WSSubprotocol)
			case !tc.ok && (status != http.StatusForbidden || !strings.Contains(body, "--ws-allowed-origins")):
				t.Errorf("%s, Origin %q: status %d, body %q; want 403 saying why", p.name, tc.origin, status, body)
			}
		}
		proctest.Eventually(t, 5*time.Second, p.name+" logs the refusal", func() bool {
			return strings.Contains(p.proc.Stderr(), "WebSocket upgrade refused: origin https://evil.test may not open")
		})
	}
}

// wsPage is the page a browser loads in TestWSOriginsInBrowser: it opens
// a WebSocket offering hypertube.v1, says HELLO and records what came
// back in window.result.
const wsPage = `<!doctype html><title>ws</title><script>
window.result = null;
const ws = new WebSocket("ws://" + new URLSearchParams(location.search).get("ws") + "/ws", ["hypertube.v1"]);
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send(new Uint8Array(%s));
ws.onmessage = (e) => {
	window.result = {opened: true, protocol: ws.protocol, type: new Uint8Array(e.data)[1]};
	ws.close();
};
ws.onclose = (e) => { if (!window.result) window.result = {opened: false, code: e.code}; };
</script>`

// wsResult is window.result of wsPage.
type wsResult struct {
	Opened   bool   `json:"opened"`
	Protocol string `json:"protocol"`
	Type     int    `json:"type"`
	Code     int    `json:"code"`
}

// TestWSOriginsInBrowser (issue 16): in a real headless Chromium, a page
// on a foreign origin cannot open the proxy's or the gateway's WebSocket
// (cross-site WebSocket hijacking), and a page on an origin that
// --ws-allowed-origins names can, gets hypertube.v1 selected, and is
// answered HELLO with WELCOME.
func TestWSOriginsInBrowser(t *testing.T) {
	hello, err := protocol.AppendFrame(nil, &protocol.Frame{Type: protocol.TypeHello, Body: []byte{0xa0}})
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(wsPage, strings.ReplaceAll(fmt.Sprint(hello), " ", ","))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// The same page server is a foreign origin as http://127.0.0.1:PORT
	// and an allowed one as http://localhost:PORT.
	gw, px := originCluster(t, "http://localhost:*")
	ctx := browser(t)
	for _, p := range []struct {
		name string
		proc *proctest.Proc
	}{{"proxy", px}, {"gateway", gw}} {
		for _, tc := range []struct {
			origin string
			ok     bool
		}{{"http://127.0.0.1:" + port, false}, {"http://localhost:" + port, true}} {
			if err := chromedp.Do(ctx, chromedp.Navigate(tc.origin+"/?ws="+p.proc.Addr.WS)); err != nil {
				t.Fatal(err)
			}
			var res *wsResult
			err := waitCtx(ctx, 10*time.Second, func() (bool, error) {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				r, err := chromedp.Run(rctx, chromedp.Evaluate[*wsResult]("window.result"))
				res = r
				return r != nil, err
			})
			if err != nil {
				t.Fatalf("%s, page on %s: no result: %v", p.name, tc.origin, err)
			}
			switch {
			case tc.ok && (!res.Opened || res.Protocol != protocol.WSSubprotocol || res.Type != int(protocol.TypeWelcome)):
				t.Errorf("%s, page on %s: %+v; want opened, %s selected, WELCOME", p.name, tc.origin, *res, protocol.WSSubprotocol)
			case !tc.ok && res.Opened:
				t.Errorf("%s, page on %s opened the WebSocket: %+v", p.name, tc.origin, *res)
			}
		}
		refusal := "WebSocket upgrade refused: origin http://127.0.0.1:" + port
		proctest.Eventually(t, 5*time.Second, p.name+" logs the refusal", func() bool {
			return strings.Contains(p.proc.Stderr(), refusal)
		})
	}
}
