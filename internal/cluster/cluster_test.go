package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/child"
	"github.com/graftlb/graftlb/internal/proctest"
)

// TestRunner starts two gateways and a proxy, in each discovery mode,
// waits until the proxy routes to both, stops them gracefully (each exits
// 0), and sees WaitPool give up at once on a proxy that exited.
func TestRunner(t *testing.T) {
	bin := proctest.Binary(t)
	for _, mode := range []string{Static, Gossip} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := New(Options{Bin: bin, Discovery: mode, Label: "cluster-test"})
			if err != nil {
				t.Fatal(err)
			}
			var all []*child.Proc
			defer func() { Stop(time.Second, all...) }()
			gw1, err := r.Gateway(ctx, "gw1", "")
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, gw1)
			gw2, err := r.Gateway(ctx, "gw2", gw1.Addr.Gossip)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, gw2)
			if (gw1.Addr.Gossip != "") != (mode == Gossip) {
				t.Fatalf("%s pool: gw1 gossips at %q", mode, gw1.Addr.Gossip)
			}
			gws := []*child.Proc{gw1, gw2}
			proxy, err := r.Proxy(ctx, "graftlb", gws)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, proxy)
			pool, err := WaitPool(ctx, proxy, 20*time.Second, Routes(Names(gws)...))
			if err != nil {
				t.Fatal(err)
			}
			if len(pool) != 2 || proxy.Addr.WS != "" {
				t.Fatalf("pool %v, WebSocket listener %q; want gw1 and gw2, no WebSocket", pool, proxy.Addr.WS)
			}
			Stop(10*time.Second, gw1, gw2)
			for _, g := range gws {
				if g.Forced() || g.ExitCode() != 0 {
					t.Errorf("%s: forced %v, exit %d; want a drain and exit 0", g.Name, g.Forced(), g.ExitCode())
				}
			}
			proxy.Kill()
			start := time.Now()
			_, err = WaitPool(ctx, proxy, 20*time.Second, Routes("gw1"))
			if err == nil || !strings.Contains(err.Error(), "exited") || time.Since(start) > 5*time.Second {
				t.Fatalf("WaitPool on an exited proxy: %v after %v", err, time.Since(start))
			}
		})
	}
}
