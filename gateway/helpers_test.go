package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/chaos"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's server keeps these after Shutdown (DESIGN.md section 8).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// logSink collects zerolog's JSON lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// lines returns the parsed log lines, optionally only those of the
// connection from remote and at level info or above.
func (s *logSink) lines(t testing.TB) []map[string]any {
	t.Helper()
	s.mu.Lock()
	data := append([]byte(nil), s.buf.Bytes()...)
	s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// notable returns the lines at info level or above about the connection
// whose client address is remote.
func (s *logSink) notable(t testing.TB, remote string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range s.lines(t) {
		if m["remote"] == remote && m["level"] != "debug" {
			out = append(out, m)
		}
	}
	return out
}

// testModule is a module for behaviours the example modules do not have.
func testModule() *gateway.Module {
	return gateway.NewModule("test", "1").
		// Block ignores its context: the deadline must be answered anyway.
		Func("T", "Block", func(ms int) string {
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return "late"
		}).
		Func("T", "Panic", func() int { panic("module bug") }).
		Func("T", "Add", func(a int, b int64) int64 { return int64(a) + b }).
		Func("T", "Boom", func() error { return errors.New("boom") }).
		Func("T", "App", func() error { return &gateway.AppError{Type: "OutOfStock", Message: "no more"} }).
		Func("T", "Info", info).
		// Version is declared stateless: no flag, no session needed.
		Func("T", "Version", info, gateway.Stateless()).
		// Say publishes text to a topic from the call's context.
		Func("T", "Say", func(ctx context.Context, topic, text string) error {
			return gateway.Publish(ctx, topic, "said", text)
		}).
		Func("T", "EmitReserved", func(ctx context.Context) error { return gateway.Emit(ctx, "$session_lost", nil) })
}

func info(ctx context.Context) map[string]any {
	info, _ := gateway.InfoFrom(ctx)
	return map[string]any{"gateway": info.Gateway, "session": info.Session.String(),
		"stateless": info.Stateless, "target": info.Target.String(), "proxied": info.Proxied}
}

// env is a running gateway with its log.
type env struct {
	g    *gateway.Gateway
	logs *logSink
}

// start runs a gateway on loopback with every module, configured by mut.
func start(t *testing.T, mut func(*gateway.Config)) *env {
	t.Helper()
	logs := &logSink{}
	cfg := gateway.DefaultConfig()
	cfg.Name = "gw-test"
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Modules = []*gateway.Module{orders.Module(), cart.Module(), ticker.Module(), chaos.Module(), testModule()}
	log := zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	cfg.Logger = &log
	if mut != nil {
		mut(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.Close()
		<-g.Done()
	})
	return &env{g: g, logs: logs}
}

// addr returns the gateway's address for a binding.
func (e *env) addr(binding string) string {
	if binding == "ws" {
		return e.g.Addrs().WS
	}
	return e.g.Addrs().TCP
}

// dial connects and says HELLO (zero session, no flags).
func (e *env) dial(t *testing.T, binding string) *gatewaytest.Peer {
	t.Helper()
	p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
	p.Hello(0, protocol.SessionID{})
	return p
}

// get fetches an HTTP endpoint of the gateway.
func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get("http://" + e.g.Addrs().HTTP + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// httpClient keeps no connections (and so no goroutines) between tests.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: gatewaytest.Timeout}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(gatewaytest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, gatewaytest.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// forBindings runs f as a subtest over each binding.
func forBindings(t *testing.T, f func(t *testing.T, binding string)) {
	for _, b := range gatewaytest.Bindings {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

type gatewayConfig = gateway.Config

// order is orders.Order decoded on the client side.
type order = orders.Order
