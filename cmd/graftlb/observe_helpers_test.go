package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// staticCluster is a proxy process in front of gateway processes listed
// with --backend (their modules announced), so that a killed gateway stays
// in the pool as down.
type staticCluster struct {
	proxy *proctest.Proc
	gws   map[string]*proctest.Proc
	names []string
}

func newStaticCluster(t *testing.T, names []string, proxyExtra ...string) *staticCluster {
	t.Helper()
	c := &staticCluster{gws: map[string]*proctest.Proc{}, names: names}
	args := []string{}
	for _, n := range names {
		g := startGW(t, n, "--modules", "orders,cart", "--log-level", "warn")
		c.gws[n] = g
		args = append(args, "--backend", "tcp://"+g.Addr.TCP+"#name="+n+",modules=orders@1+cart@1")
	}
	c.proxy = startProxyProc(t, append(args, proxyExtra...)...)
	c.waitReady(t)
	return c
}

// waitReady waits until the proxy routes to every gateway.
func (c *staticCluster) waitReady(t *testing.T) {
	t.Helper()
	proctest.Eventually(t, 15*time.Second, "every gateway ready", func() bool {
		st := poolStates(t, c.proxy.Addr.Admin)
		for _, n := range c.names {
			if st[n] != "ready" {
				return false
			}
		}
		return true
	})
}

// heldSession is a session whose cart a known gateway holds.
type heldSession struct {
	s     *client.Session
	cart  *client.Object
	owner string
}

// openSessions creates n sessions with a cart each through c, until every
// gateway of names holds at least one, and returns them.
func openSessions(t *testing.T, c *client.Conn, n int, names []string) []heldSession {
	t.Helper()
	ctx := ctxT(t)
	var out []heldSession
	per := map[string]int{}
	for i := 0; i < 10*n && (len(out) < n || len(per) < len(names)); i++ {
		s := c.NewSession()
		cart, err := s.New(ctx, "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		res, err := cart.Call(ctx, "Total")
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			Gateway string `cbor:"gateway"`
		}
		if err := res.Decode(&tr); err != nil {
			t.Fatal(err)
		}
		per[tr.Gateway]++
		out = append(out, heldSession{s: s, cart: cart, owner: tr.Gateway})
	}
	if len(per) < len(names) {
		t.Fatalf("sessions landed on %v only", per)
	}
	return out
}

// lostOf calls every session once and returns how many got SESSION_LOST;
// every other call must succeed.
func lostOf(t *testing.T, sessions []heldSession, victim string) int {
	t.Helper()
	ctx := ctxT(t)
	lost := 0
	for _, h := range sessions {
		var err error
		for try := 0; try < 100; try++ { // UNAVAILABLE: it did not run; try again
			if _, err = h.cart.Call(ctx, "Total"); !errors.Is(err, protocol.ErrUnavailable) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		switch {
		case errors.Is(err, protocol.ErrSessionLost):
			if h.owner != victim {
				t.Errorf("session on %s lost too: %v", h.owner, err)
			}
			lost++
		case err != nil:
			t.Errorf("session on %s: %v", h.owner, err)
		case h.owner == victim:
			t.Errorf("a session of %s survived its death", victim)
		}
	}
	return lost
}

// httpGet returns the body of GET url, failing the test on any error.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// waitCtx polls cond every 50ms until it holds or d passes.
func waitCtx(ctx context.Context, d time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func joinSorted(m map[string]float64) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%.1f ", k, v)
	}
	return b.String()
}
