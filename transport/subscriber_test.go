package transport_test

import (
	"bytes"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

func startServer(t *testing.T, cfg transport.EmbeddedConfig) *transport.Embedded {
	t.Helper()
	srv, err := transport.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// subscribed starts a gateway subscribed to srv.
func subscribed(t *testing.T, srv *transport.Embedded, name string, cfg transport.SubscriberConfig) (*gateway.Gateway, *gateway.NATS) {
	t.Helper()
	g := testgw.Start(t, name, nil)
	cfg.URL = srv.URL()
	n, err := g.ServeNATS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return g, n
}

func rawConn(t *testing.T, srv *transport.Embedded) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func callFrame(t *testing.T, flags protocol.Flags, module, typ, method string, args ...any) []byte {
	t.Helper()
	body, err := protocol.MarshalArgs(args...)
	if err != nil {
		t.Fatal(err)
	}
	f := protocol.Frame{Type: protocol.TypeCall, Flags: flags, CallID: 9,
		Module: []byte(module), TypeName: []byte(typ), Method: []byte(method), Body: body}
	b, err := protocol.AppendFrame(nil, &f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// answerCode decodes a reply: 0 for a RESULT, else the ERROR's code.
func answerCode(t *testing.T, m *nats.Msg) protocol.Code {
	t.Helper()
	var f protocol.Frame
	if err := protocol.Decode(m.Data, &f); err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	if f.Type == protocol.TypeResult {
		return 0
	}
	if f.Type != protocol.TypeError {
		t.Fatalf("reply is a %s", f.Type)
	}
	return protocol.ErrorFromBody(f.Body).Code
}

// TestSubscriberBadInput: each malformed message on a subject is answered
// with a clear error, counted, and the gateway goes on serving.
func TestSubscriberBadInput(t *testing.T) {
	srv := startServer(t, transport.EmbeddedConfig{})
	_, n := subscribed(t, srv, "gw1", transport.SubscriberConfig{MaxFrame: 4096})
	nc := rawConn(t, srv)
	subj := transport.Subjects{}.Queue("orders@1")
	good := callFrame(t, protocol.FlagStateless, "orders@1", "Orders", "GetOrder", "o-1")
	past := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
	tests := []struct {
		name   string
		data   []byte
		header nats.Header
		want   protocol.Code
	}{
		{"garbage", []byte("not a frame"), nil, protocol.CodeBadFrame},
		{"a RESULT", func() []byte {
			b, _ := protocol.AppendFrame(nil, &protocol.Frame{Type: protocol.TypeResult})
			return b
		}(), nil, protocol.CodeBadFrame},
		{"oversized", bytes.Repeat([]byte{1}, 5000), nil, protocol.CodeTooLarge},
		{"stateful", callFrame(t, 0, "orders@1", "Orders", "GetOrder", "o-1"), nil, protocol.CodeBadArgs},
		{"version 2", good, nats.Header{transport.HeaderVersion: {"2"}}, protocol.CodeUnsupportedVersion},
		{"bad deadline", good, nats.Header{transport.HeaderDeadline: {"soon"}}, protocol.CodeBadFrame},
		{"expired", good, nats.Header{transport.HeaderDeadline: {past}}, protocol.CodeDeadlineExceeded},
		{"good", good, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := nats.NewMsg(subj)
			m.Data, m.Header = tt.data, tt.header
			if m.Header == nil {
				m.Header = nats.Header{}
			}
			r, err := nc.RequestMsg(m, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := answerCode(t, r); got != tt.want {
				t.Fatalf("answer %s, want %s", got, tt.want)
			}
			if tt.want == 0 && r.Header.Get(transport.HeaderGateway) != "gw1" {
				t.Fatalf("answer names gateway %q", r.Header.Get(transport.HeaderGateway))
			}
		})
	}
	c := n.Counters()
	if c.Malformed.Load() != 5 || c.Oversized.Load() != 1 || c.Expired.Load() != 1 {
		t.Fatalf("counted malformed %d oversized %d expired %d, want 5, 1, 1",
			c.Malformed.Load(), c.Oversized.Load(), c.Expired.Load())
	}
}

// TestUnknownReply: a reply to a correlation id the proxy never gave is
// counted and dropped.
func TestUnknownReply(t *testing.T) {
	srv := startServer(t, transport.EmbeddedConfig{})
	tr, err := transport.Connect(transport.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	nc := rawConn(t, srv)
	// The proxy's inbox is not public; a reply to any subject under the
	// _INBOX prefix that it subscribes to is how a stray reply arrives.
	// Learn it from a request the proxy makes.
	sub, err := nc.SubscribeSync(transport.Subjects{}.Queue("orders@1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has the subscription before the request
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	frame := callFrame(t, protocol.FlagStateless, "orders@1", "Orders", "GetOrder", "o-1")
	tr.Call(&transport.Call{Mode: transport.Queue, Frame: frame, Module: []byte("orders@1"), Flags: protocol.FlagStateless,
		Deadline: time.Now().Add(300 * time.Millisecond)}, func(a []byte) { got <- a })
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-got // expired: the reply below finds no call
	for _, subject := range []string{m.Reply, m.Reply + "x", m.Reply[:len(m.Reply)-1] + "999999"} {
		_ = nc.Publish(subject, []byte("late"))
	}
	proctest.Eventually(t, 5*time.Second, "stray replies counted", func() bool {
		return tr.Counters.UnknownReplies.Load() == 3
	})
}

// TestConnectionDrop: a queue call in flight when the NATS server goes
// away fails with UNAVAILABLE; the proxy reconnects when it is back.
func TestConnectionDrop(t *testing.T) {
	srv, err := transport.StartEmbedded(transport.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL())
	g, _ := subscribed(t, srv, "gw1", transport.SubscriberConfig{Modules: []string{"chaos@1"}, Queue: true})
	tr, err := transport.Connect(transport.Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got := make(chan []byte, 1)
	frame := callFrame(t, protocol.FlagStateless, "chaos@1", "Chaos", "Sleep", 3000)
	tr.Call(&transport.Call{Mode: transport.Queue, Frame: frame, Module: []byte("chaos@1"), Flags: protocol.FlagStateless}, func(a []byte) { got <- a })
	proctest.Eventually(t, 5*time.Second, "the call is running on the gateway", func() bool { return g.Stats().CallsInFlight == 1 })
	srv.Shutdown()
	select {
	case a := <-got:
		var f protocol.Frame
		if protocol.Decode(a, &f) != nil || f.Type != protocol.TypeError || protocol.ErrorFromBody(f.Body).Code != protocol.CodeUnavailable {
			t.Fatalf("answer %v, want ERROR UNAVAILABLE", f.Type)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the call in flight was not failed when the connection dropped")
	}
	if tr.Counters.Disconnects.Load() != 1 || tr.Counters.FailedInFlight.Load() != 1 {
		t.Fatalf("disconnects %d, failed in flight %d, want 1, 1", tr.Counters.Disconnects.Load(), tr.Counters.FailedInFlight.Load())
	}
	// Back on the same port: both sides reconnect, calls work again.
	startServer(t, transport.EmbeddedConfig{Addr: u.Host})
	proctest.Eventually(t, 15*time.Second, "a call works after the server is back", func() bool {
		frame := callFrame(t, protocol.FlagStateless, "chaos@1", "Chaos", "Sleep", 1)
		got := make(chan []byte, 1)
		tr.Call(&transport.Call{Mode: transport.Queue, Frame: frame, Module: []byte("chaos@1"), Flags: protocol.FlagStateless,
			Deadline: time.Now().Add(time.Second)}, func(a []byte) { got <- a })
		var f protocol.Frame
		return protocol.Decode(<-got, &f) == nil && f.Type == protocol.TypeResult
	})
}
