package discovery

import (
	"testing"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
)

// TestJoinGatewayAnnouncesTLS: a gateway with TLS on its listeners says
// so in its gossip metadata, and the pool sees its member's Addrs.TLS; a
// plain gateway's member says plain.
func TestJoinGatewayAnnouncesTLS(t *testing.T) {
	awaitMemberlistExit(t)
	px := startNode(t, "px1", RoleProxy, nil, nil)
	ca := tlstest.NewCA(t, "gossip")
	cert := ca.Server(t, "gw")
	cfg := gateway.DefaultConfig()
	cfg.Name, cfg.TCP, cfg.WS, cfg.HTTP = "gwtls", "127.0.0.1:0", "", ""
	cfg.TLS = tlsfiles.ServerFiles{Cert: cert.CertFile, Key: cert.KeyFile}
	cfg.Modules = []*gateway.Module{gateway.NewModule("echo", "2").Func("Echo", "Echo", func(s string) string { return s }, gateway.Stateless())}
	gwTLS, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := gwTLS.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gwTLS.Close() })
	plain := startGateway(t, "gwplain", make(chan struct{}))
	for _, gw := range []*gateway.Gateway{gwTLS, plain} {
		m, err := JoinGateway(gw, joinConfig(px.LocalAddr(), &logBuffer{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
	}
	waitFor(t, converge, "the pool sees which gateway speaks TLS", func() bool {
		a, okA := px.Snapshot().Lookup("gwtls")
		b, okB := px.Snapshot().Lookup("gwplain")
		return okA && okB && a.Addrs.TLS && !b.Addrs.TLS && a.Addrs.TCP == gwTLS.Addrs().TCP
	})
}
