package main

import (
	"flag"
	"os"
	"time"

	"github.com/graftlb/graftlb/admin"
	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/internal/httpserver"
)

// adminFlags are the proxy's admin listener flags.
type adminFlags struct {
	addr     string
	limits   admin.Limits
	token    string
	insecure bool
	pprof    bool
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "admin", "127.0.0.1:9889",
		"admin HTTP listener: dashboard /, /metrics, /pool, /stats, /sessions/ID, /config, /healthz, /readyz (empty: off)")
	fs.DurationVar(&a.limits.ReadTimeout, "admin-read-timeout", httpserver.DefaultReadTimeout, "admin: time to send a whole request (408 after)")
	fs.DurationVar(&a.limits.IdleTimeout, "admin-idle-timeout", httpserver.DefaultIdleTimeout, "admin: close keep-alive connections idle this long")
	fs.IntVar(&a.limits.MaxConns, "admin-max-conns", httpserver.DefaultMaxConns, "admin: connections at once (503 beyond)")
	fs.StringVar(&a.token, "admin-token", "", "bearer token the admin listener requires on every path but /healthz and /readyz (default: $"+admin.TokenEnv+")")
	fs.BoolVar(&a.insecure, "admin-insecure", false, "allow a non-loopback --admin without a token")
	fs.BoolVar(&a.pprof, "admin-pprof", false, "serve /debug/pprof/ on the admin listener")
}

// resolve fills the token from the environment and checks the exposure
// rule: a non-loopback admin listener needs a token or --admin-insecure.
func (a *adminFlags) resolve() error {
	if a.token == "" {
		a.token = os.Getenv(admin.TokenEnv)
	}
	return admin.CheckExposure(a.addr, a.token, a.insecure)
}

// server returns the admin server the flags describe.
func (a *adminFlags) server(s *admin.Server) *admin.Server {
	s.RequireToken(a.token)
	if a.pprof {
		s.EnablePprof()
	}
	return s
}

// proxyConfigView is what GET /config shows: the effective configuration
// of the proxy, its admin listener and its discovery, secrets redacted.
type proxyConfigView struct {
	Proxy      balancer.Config `json:"proxy"`
	Admin      adminView       `json:"admin"`
	Discovery  discoveryView   `json:"discovery"`
	DrainGrace time.Duration   `json:"drain_grace"`
	Routes     []string        `json:"routes,omitempty"` // --route, as reloaded
}

type adminView struct {
	Addr     string       `json:"addr"`
	Token    string       `json:"token"`
	Insecure bool         `json:"insecure"`
	Pprof    bool         `json:"pprof"`
	Limits   admin.Limits `json:"limits"`
}

type discoveryView struct {
	Backends    []string `json:"backends,omitempty"`
	DNS         string   `json:"dns,omitempty"`
	Gossip      string   `json:"gossip,omitempty"`
	Join        []string `json:"join,omitempty"`
	GossipKey   string   `json:"gossip_key,omitempty"`
	GossipLabel string   `json:"gossip_label,omitempty"`
}

func (a *adminFlags) view() adminView {
	return adminView{Addr: a.addr, Token: admin.Redacted(a.token), Insecure: a.insecure, Pprof: a.pprof, Limits: a.limits.WithDefaults()}
}

func gossipView(g *gossipFlags) discoveryView {
	if g.bind == "" {
		return discoveryView{}
	}
	key := g.key
	if key == "" {
		key = os.Getenv(discovery.KeyEnv)
	}
	return discoveryView{Gossip: g.bind, Join: g.join, GossipKey: admin.Redacted(key), GossipLabel: g.label}
}
