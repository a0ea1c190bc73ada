package passthrough

import (
	"context"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
)

// TestTLSBothWays: pass-through terminates TLS from clients (tls:// and
// wss://, a client certificate required) and opens TLS to gateways that
// speak it; a client without a certificate is refused.
func TestTLSBothWays(t *testing.T) {
	ca := tlstest.NewCA(t, "pt")
	gwCert, ptCert, alice := ca.Server(t, "gw"), ca.Server(t, "pt"), ca.Client(t, "alice")
	gs := []*gateway.Gateway{testgw.Start(t, "gw1", func(c *gateway.Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: gwCert.CertFile, Key: gwCert.KeyFile}
	})}
	pt := startPassthrough(t, gs, "addr", func(c *Config) {
		c.TLS = tlsfiles.ServerFiles{Cert: ptCert.CertFile, Key: ptCert.KeyFile, ClientCA: ca.File}
		c.BackendTLS = tlsfiles.ClientFiles{CA: ca.File}
	})
	a := pt.Addrs()
	for _, target := range []string{"tls://" + a.TCP, "wss://" + a.WS + "/ws"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := client.Dial(ctx, target, client.Options{TLS: tlstest.ClientConfig(t, ca, &alice)})
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", target, err)
		}
		if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Errorf("%s: call: %v", target, err)
		}
		_ = c.Close()
		if c, err := client.Dial(ctx, target, client.Options{TLS: tlstest.ClientConfig(t, ca, nil)}); err == nil {
			if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err == nil {
				t.Errorf("%s: a client without a certificate was served", target)
			}
			_ = c.Close()
		}
		cancel()
	}
}
