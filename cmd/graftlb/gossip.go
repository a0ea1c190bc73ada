package main

import (
	"flag"

	"github.com/graftlb/graftlb/discovery"
	"github.com/rs/zerolog"
)

// gossipFlags are the membership flags of gateway and proxy.
type gossipFlags struct {
	bind  string
	join  listFlag
	key   string
	label string
	zone  string
}

func (g *gossipFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.bind, "gossip", "", "gossip (memberlist) listener, IP:PORT; empty: no gossip")
	fs.Var(&g.join, "join", "gossip seeds host:port (repeat, or comma-separated)")
	fs.StringVar(&g.key, "gossip-key", "", "gossip encryption key, base64 of 16/24/32 bytes (default: $"+discovery.KeyEnv+")")
	fs.StringVar(&g.label, "gossip-label", discovery.DefaultLabel, "cluster label; members with another label never join")
	fs.StringVar(&g.zone, "zone", "", "locality label announced to the cluster")
}

// config returns the gossip config the flags describe, for a member
// logging to log. Callers check that --gossip is set.
func (g *gossipFlags) config(log *zerolog.Logger) discovery.Config {
	cfg := discovery.DefaultConfig() // reads the key from $GRAFTLB_GOSSIP_KEY
	cfg.Local.Zone = g.zone
	cfg.BindAddr = g.bind
	cfg.Join = g.join
	if g.key != "" {
		cfg.Key = g.key
	}
	cfg.Label = g.label
	cfg.Logger = log
	return cfg
}

// start joins the cluster as local (a proxy), or returns nil when
// --gossip is unset. Gateways join with discovery.JoinGateway instead.
func (g *gossipFlags) start(local discovery.Member, log zerolog.Logger) (*discovery.Gossip, error) {
	if g.bind == "" {
		return nil, nil
	}
	cfg := g.config(&log)
	zone := cfg.Local.Zone
	cfg.Local = local
	cfg.Local.Zone = zone
	gs, err := discovery.NewGossip(cfg)
	if err != nil {
		return nil, err
	}
	if err := gs.Start(); err != nil {
		_ = gs.Shutdown()
		return nil, err
	}
	return gs, nil
}
