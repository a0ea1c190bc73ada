package balancer

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/credtest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// authSetup is one test's credentials: a token file with alice's and
// bob's static tokens, and JWT keys.
type authSetup struct {
	keys       *credtest.Keys
	tokensFile string
}

const (
	aliceToken = "alice-static-token-1"
	bobToken   = "bob-static-token-1"
)

func newAuthSetup(t *testing.T) *authSetup {
	return &authSetup{keys: credtest.NewKeys(t), tokensFile: credtest.TokensFile(t, "alice", aliceToken, "bob", bobToken)}
}

func (a *authSetup) config() credential.Config {
	return credential.Config{TokensFile: a.tokensFile, JWTHS256KeyFile: a.keys.HS256File, JWTEd25519KeyFile: a.keys.EdFile}
}

func (a *authSetup) on(c *Config) { c.Auth = a.config() }

// dialAs connects to target presenting cred.
func dialAs(t *testing.T, target, cred string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), target, client.Options{Credential: []byte(cred)})
	if err != nil {
		t.Fatalf("dial %s with a credential: %v", target, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestAuthRefusesBadCredentials: with credentials on, a HELLO with no,
// an unknown, an expired, a badly signed or a wrongly signed (alg none,
// HS256 with the Ed25519 key) credential is answered ERROR
// UNAUTHENTICATED with call id 0, and the connection is closed; each is
// counted.
func TestAuthRefusesBadCredentials(t *testing.T) {
	a := newAuthSetup(t)
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, a.on)
	now := time.Now()
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, credtest.Claims("alice", now, time.Hour)).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, credtest.Claims("alice", now, time.Hour)).
		SignedString([]byte(a.keys.EdPub))
	cases := map[string]string{
		"none":         "",
		"unknown":      "not-a-token",
		"expired":      a.keys.HS256JWT(t, credtest.Claims("alice", now.Add(-2*time.Hour), time.Minute)),
		"other key":    credtest.NewKeys(t).EdJWT(t, credtest.Claims("alice", now, time.Hour)),
		"alg none":     none,
		"HS256 by pub": confused,
	}
	n := 0
	for name, cred := range cases {
		for _, binding := range gatewaytest.Bindings {
			t.Run(name+"/"+binding, func(t *testing.T) {
				addr := p.Addrs().TCP
				if binding == "ws" {
					addr = p.Addrs().WS
				}
				peer := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
				body, _ := protocol.Marshal(protocol.Hello{Client: "test", Credential: []byte(cred)})
				if err := peer.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body}); err != nil {
					t.Fatal(err)
				}
				f := peer.Next()
				if f == nil || f.Type != protocol.TypeError || f.CallID != 0 {
					t.Fatalf("HELLO with %s credential answered %s, want ERROR call id 0", name, gatewaytest.Describe(f))
				}
				if code, msg, _, _ := protocol.DecodeErrorBody(f.Body); code != protocol.CodeUnauthenticated || len(msg) == 0 {
					t.Fatalf("HELLO with %s credential: %v %q, want UNAUTHENTICATED with a reason", name, code, msg)
				}
				_ = peer.WaitClosed()
				// And through the Go client: a dial error of that code.
				target := proxyTargets(p)[binding]
				_, err := client.Dial(context.Background(), target, client.Options{Credential: []byte(cred)})
				if !errors.Is(err, protocol.ErrUnauthenticated) {
					t.Fatalf("client.Dial with %s credential: %v, want UNAUTHENTICATED", name, err)
				}
			})
			n += 2
		}
	}
	if got := p.Stats().Unauthenticated; got != int64(n) {
		t.Fatalf("unauthenticated counted %d, want %d", got, n)
	}
	if p.Stats().Active != 0 || p.sessions.len() != 0 {
		t.Fatalf("refused HELLOs left %d calls, %d sessions", p.Stats().Active, p.sessions.len())
	}
}

// TestAuthGoodCredentialsPass: a static token, an HS256 JWT and an EdDSA
// JWT each open a connection whose calls are served, over TCP and
// WebSocket.
func TestAuthGoodCredentialsPass(t *testing.T) {
	a := newAuthSetup(t)
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, a.on)
	now := time.Now()
	creds := map[string]string{
		"static": aliceToken,
		"HS256":  a.keys.HS256JWT(t, credtest.Claims("carol", now, time.Hour)),
		"EdDSA":  a.keys.EdJWT(t, credtest.Claims("dave", now, time.Hour)),
	}
	for name, cred := range creds {
		for _, binding := range gatewaytest.Bindings {
			t.Run(name+"/"+binding, func(t *testing.T) {
				c := dialAs(t, proxyTargets(p)[binding], cred)
				if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
					t.Fatalf("stateless call: %v", err)
				}
				testgw.BuildCarts(t, c, 3)
			})
		}
	}
	if got := p.stats.unauthenticated.Load(); got != 0 {
		t.Fatalf("%d good credentials refused", got)
	}
}

// TestSessionsBoundToIdentity: carts alice builds through one proxy she
// reads back through another (the same identity by a static token there,
// by a JWT here); bob, resuming alice's session ids through either
// proxy, on a connection's own session (HELLO RESUME) or another one of
// his connection, gets SESSION_LOST and never her objects. Neither proxy
// nor gateway knows alice's session under the id she names it by.
func TestSessionsBoundToIdentity(t *testing.T) {
	a := newAuthSetup(t)
	gs := startGateways(t, 3, nil)
	pa, pb := startProxy(t, gs, a.on), startProxy(t, gs, a.on)
	ctx := testCtx(t)
	aliceJWT := a.keys.EdJWT(t, credtest.Claims("alice", time.Now(), time.Hour))
	alice := dialAs(t, proxyTargets(pa)["tcp"], aliceJWT)
	carts := testgw.BuildCarts(t, alice, 8)

	alice2 := dialAs(t, proxyTargets(pb)["ws"], aliceToken)
	for i, cs := range carts {
		if _, err := testgw.VerifyCart(ctx, alice2, cs); err != nil {
			t.Fatalf("alice reading her cart %d through the second proxy: %v", i, err)
		}
	}
	for _, p := range []*Proxy{pa, pb} {
		for _, cs := range carts {
			if p.sessions.lookup(cs.ID) != nil {
				t.Fatal("a proxy names an authenticated session by its client's id")
			}
		}
	}
	for pi, p := range []*Proxy{pa, pb} {
		for _, binding := range gatewaytest.Bindings {
			bob := dialAs(t, proxyTargets(p)[binding], bobToken)
			for i, cs := range carts {
				_, err := testgw.VerifyCart(ctx, bob, cs)
				if !errors.Is(err, protocol.ErrSessionLost) {
					t.Fatalf("bob through proxy %d/%s reading alice's cart %d: %v, want SESSION_LOST", pi, binding, i, err)
				}
			}
			// HELLO RESUME of alice's session as the connection's own.
			for i, cs := range carts[:2] {
				c, err := client.Dial(ctx, proxyTargets(p)[binding], client.Options{Credential: []byte(bobToken), Session: cs.ID, Resume: true})
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Session().Object("cart@1", "Cart", cs.Object).Call(ctx, "Total")
				_ = c.Close()
				if !errors.Is(err, protocol.ErrSessionLost) {
					t.Fatalf("bob resuming alice's session %d as his own through proxy %d: %v, want SESSION_LOST", i, pi, err)
				}
			}
		}
	}
	// Alice's carts are untouched by all that.
	for i, cs := range carts {
		if _, err := testgw.VerifyCart(ctx, alice, cs); err != nil {
			t.Fatalf("alice's cart %d after bob's attempts: %v", i, err)
		}
	}
}

// TestBoundSessionCallbacksAndEvents: through a proxy with credentials,
// callbacks and events of the connection's own session and of another
// session reach the client under the client's session ids (the Go client
// routes them by session id: under the gateway's derived id they would be
// dropped), and so do topic subscriptions' answers.
func TestBoundSessionCallbacksAndEvents(t *testing.T) {
	a := newAuthSetup(t)
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, a.on)
	c := dialAs(t, proxyTargets(p)["tcp"], aliceToken)
	var flashes [2]atomic.Int32
	for i, s := range []*client.Session{c.Session(), c.NewSession()} {
		for _, stateless := range []bool{false, true} {
			checkCallbacksAndEvents(t, s, stateless)
		}
		s.Handle("flash", func(client.Event) { flashes[i].Add(1) })
		if err := s.Subscribe(testCtx(t), "news"); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	// A topic event reaches both sessions, under the client's ids.
	if err := gs[0].Publish("news", "flash", "v"); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "the topic event reached both sessions", func() bool {
		return flashes[0].Load() == 1 && flashes[1].Load() == 1
	})
}

// TestBoundSessionsHandedOver: carts alice holds on a gateway that drains
// move (MOVED names the derived ids, which the proxies rebind) and stay
// hers through both proxies: she reads them and gets their events under
// her own ids; bob still never gets them.
func TestBoundSessionsHandedOver(t *testing.T) {
	a := newAuthSetup(t)
	gs := testgw.GossipPool(t, []string{"gw1", "gw2", "gw3"}, func(c *gateway.Config) { c.DrainGrace = time.Minute })
	// Health is not under test: on a loaded machine a gateway busy
	// adopting sessions may miss a 1 s check, which would fail their calls.
	lenient := func(c *Config) { a.on(c); c.Health.Check.Timeout, c.Health.Check.Fall = 5*time.Second, 5 }
	pa, pb := startProxy(t, gs, lenient), startProxy(t, gs, lenient)
	ctx := testCtx(t)
	alice := dialAs(t, proxyTargets(pa)["tcp"], aliceToken)
	alice2 := dialAs(t, proxyTargets(pb)["tcp"], a.keys.HS256JWT(t, credtest.Claims("alice", time.Now(), time.Hour)))
	victim := gs[0]
	var onVictim []testgw.CartSession
	for len(onVictim) < 6 {
		for _, cs := range testgw.BuildCarts(t, alice, 6) {
			if cs.Owner == victim.Name() {
				onVictim = append(onVictim, cs)
			}
		}
	}
	// Both proxies bind them before the drain.
	for _, cs := range onVictim {
		if _, err := testgw.VerifyCart(ctx, alice2, cs); err != nil {
			t.Fatal(err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := victim.Drain(dctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	proctest.Eventually(t, 10*time.Second, "both proxies rebound the carts (MOVED)", func() bool {
		return pa.Stats().SessionsMoved >= int64(len(onVictim)) && pb.Stats().SessionsMoved >= int64(len(onVictim))
	})
	for i, cs := range onVictim {
		cs.Owner = "" // moved
		for j, c := range []*client.Conn{alice, alice2} {
			gw, err := testgw.VerifyCart(ctx, c, cs)
			if err != nil || gw == victim.Name() {
				t.Fatalf("cart %d through proxy %d after the handoff: on %q, %v", i, j, gw, err)
			}
			checkCallbacksAndEvents(t, c.ResumeSession(cs.ID), false)
		}
	}
	for _, p := range []*Proxy{pa, pb} {
		if st := p.Stats(); st.SessionsLost != 0 {
			t.Fatalf("a proxy lost %d of alice's sessions", st.SessionsLost)
		}
	}
	// Bob's sessions (derived from his identity) are lost, or UNAVAILABLE:
	// the drained gateway is still in the (static) pool, and while it is
	// not known to be down for good a session no gateway holds may be
	// there for all a proxy knows. Either way, never alice's cart.
	bob := dialAs(t, proxyTargets(pb)["ws"], bobToken)
	for i, cs := range onVictim {
		cs.Owner = ""
		_, err := testgw.VerifyCart(ctx, bob, cs)
		if !errors.Is(err, protocol.ErrSessionLost) && !errors.Is(err, protocol.ErrUnavailable) {
			t.Fatalf("bob reading moved cart %d: %v, want SESSION_LOST or UNAVAILABLE", i, err)
		}
	}
}

// TestCallRatePerIdentity: with credentials, the call rate is counted per
// identity: alice's two connections share one burst, while bob, from the
// same address, has his own (per source, all would share one).
func TestCallRatePerIdentity(t *testing.T) {
	a := newAuthSetup(t)
	gs := startGateways(t, 1, nil)
	clk := clock.NewFake()
	p := startProxy(t, gs, func(c *Config) { a.on(c); c.CallRate, c.CallBurst, c.Clock = 10, 6, clk })
	a1 := dialAs(t, proxyTargets(p)["tcp"], aliceToken)
	a2 := dialAs(t, proxyTargets(p)["ws"], a.keys.HS256JWT(t, credtest.Claims("alice", clk.Now(), time.Hour)))
	b := dialAs(t, proxyTargets(p)["tcp"], bobToken)
	ctx := testCtx(t)
	call := func(c *client.Conn) error {
		_, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
		return err
	}
	for i := range 6 {
		if err := call([]*client.Conn{a1, a2}[i%2]); err != nil {
			t.Fatalf("alice's call %d of her burst of 6: %v", i, err)
		}
	}
	for _, c := range []*client.Conn{a1, a2} {
		err := call(c)
		if !errors.Is(err, protocol.ErrOverloaded) || !strings.Contains(err.Error(), "identity") {
			t.Fatalf("alice past her burst: %v, want OVERLOADED naming the identity's rate", err)
		}
	}
	for i := range 6 {
		if err := call(b); err != nil {
			t.Fatalf("bob's call %d, from the same address: %v", i, err)
		}
	}
	clk.Advance(time.Second)
	if err := call(a2); err != nil {
		t.Fatalf("alice after the budget refilled: %v", err)
	}
}
