package gateway_test

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
	"github.com/graftlb/graftlb/protocol"
)

// Session handoff between gateways that require client certificates
// (TLS.ClientCA): each presents its own listener certificate on its links
// to the others.

// mtlsPool starts gw-a and gw-b, each serving certs[name] and requiring a
// client certificate from ca, trusting ca on its links to the other.
func mtlsPool(t *testing.T, ca *tlstest.CA, certs map[string]tlstest.Pair, mut func(*gateway.Config)) *pool {
	t.Helper()
	return startPool(t, 2, func(c *gateway.Config) {
		p := certs[c.Name]
		c.TLS = tlsfiles.ServerFiles{Cert: p.CertFile, Key: p.KeyFile, ClientCA: ca.File}
		c.PeerTLS = tlstest.ClientConfig(t, ca, nil)
		if mut != nil {
			mut(c)
		}
	})
}

// tlsPeer dials e's TCP listener with TLS (conf) and says HELLO with
// flags and client.
func tlsPeer(t *testing.T, e *env, conf *tls.Config, flags protocol.Flags, client string) *gatewaytest.Peer {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: gatewaytest.Timeout}, Config: tlsfiles.ForHost(conf, "127.0.0.1")}
	nc, err := d.Dial("tcp", e.g.Addrs().TCP)
	if err != nil {
		t.Fatal(err)
	}
	p := gatewaytest.Over(t, nc, nil, gatewaytest.Options{})
	p.HelloWith(flags, protocol.SessionID{}, protocol.Hello{Client: client, Instance: "px1"})
	return p
}

// TestHandoffOverMutualTLS: a cart session on a draining gw-a moves to
// gw-b over a link on which gw-a presents its own certificate, and reads
// back there exactly.
func TestHandoffOverMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "pool")
	pl := mtlsPool(t, ca, map[string]tlstest.Pair{"gw-a": ca.Peer(t, "gw-a"), "gw-b": ca.Peer(t, "gw-b")}, nil)
	a, b := pl.envs[0], pl.envs[1]
	proxyCert := ca.Client(t, "proxy")
	clientConf := tlstest.ClientConfig(t, ca, &proxyCert)
	px := tlsPeer(t, a, clientConf, protocol.FlagProxy, "test-proxy")
	sid := protocol.NewSessionID()
	obj := newCart(t, px, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
	for _, it := range []struct {
		name  string
		price int64
	}{{"pen", 150}, {"ink", 250}} {
		gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Session: sid, Object: obj,
			Args: []any{it.name, it.price}}), nil)
	}
	drained := drain(t, a)
	if f := movedFrame(t, px, sid); string(f.Module) != "gw-b" {
		t.Fatalf("MOVED to %q, want gw-b", f.Module)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if s := a.g.Stats(); s.SessionsMoved != 1 || s.SessionsLostAtDrain != 0 {
		t.Fatalf("gw-a's stats: %+v, want 1 moved, none lost", s)
	}
	d := tlsPeer(t, b, clientConf, 0, "gatewaytest")
	var items cart.ItemsResult
	gatewaytest.Result(t, d.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Session: sid, Object: obj}), &items)
	if !slices.Equal(items.Items, []string{"pen", "ink"}) || items.Gateway != "gw-b" {
		t.Fatalf("Items on gw-b = %+v, want [pen ink] on gw-b", items)
	}
	var total cart.TotalResult
	gatewaytest.Result(t, d.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Session: sid, Object: obj}), &total)
	if total.Total != 400 || total.Gateway != "gw-b" {
		t.Fatalf("Total on gw-b = %+v, want 400 on gw-b", total)
	}
}

// TestHandoffOverMutualTLSRefused: gw-a's certificate is from another CA
// than the one gw-b requires of its clients, so gw-b refuses gw-a's link:
// the session stays on gw-a and is lost at the end of its drain grace,
// and gw-a logs why.
func TestHandoffOverMutualTLSRefused(t *testing.T) {
	ca, rogue := tlstest.NewCA(t, "pool"), tlstest.NewCA(t, "rogue")
	pl := mtlsPool(t, ca, map[string]tlstest.Pair{"gw-a": rogue.Peer(t, "gw-a"), "gw-b": ca.Peer(t, "gw-b")},
		func(c *gateway.Config) { c.DrainGrace = time.Second })
	a := pl.envs[0]
	proxyCert := ca.Client(t, "proxy")
	clientConf := tlstest.ClientConfig(t, ca, &proxyCert)
	clientConf.RootCAs.AddCert(rogue.Cert) // the proxy trusts gw-a's certificate
	px := tlsPeer(t, a, clientConf, protocol.FlagProxy, "test-proxy")
	sid := protocol.NewSessionID()
	newCart(t, px, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
	if err := <-drain(t, a); err != nil {
		t.Fatal(err)
	}
	if s := a.g.Stats(); s.SessionsMoved != 0 || s.SessionsLostAtDrain != 1 {
		t.Fatalf("gw-a's stats: %+v, want none moved, 1 lost", s)
	}
	var refused []string
	for _, m := range a.logs.lines(t) {
		if m["message"] == "handoff: adopt refused or failed" && m["to"] == "gw-b" {
			refused = append(refused, m["error"].(string))
		}
	}
	if len(refused) == 0 || !strings.Contains(refused[0], "tls") {
		t.Fatalf("gw-a logged no refused TLS link to gw-b: %q", refused)
	}
	t.Logf("gw-a logged: %s", refused[0])
}
