package main

import (
	"flag"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/rs/zerolog"
)

// gossipFlags are the membership flags of gateway and proxy.
type gossipFlags struct {
	bind      string
	advertise string
	join      listFlag
	key       string
	label     string
	zone      string
	rejoin    time.Duration
}

func (g *gossipFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.bind, "gossip", "", "gossip (memberlist) listener, HOST:PORT (HOST an IP or a name); empty: no gossip")
	fs.StringVar(&g.advertise, "advertise", "", "the host others dial for this node, IP or name, in the gossip and every announced listener "+
		"(default: the --gossip IP; for a wildcard --gossip, a private IP of this machine)")
	fs.Var(&g.join, "join", "gossip seeds host:port, IPs or names, re-resolved at each join (repeat, or comma-separated)")
	fs.StringVar(&g.key, "gossip-key", "", "gossip encryption key, base64 of 16/24/32 bytes (default: $"+discovery.KeyEnv+")")
	fs.StringVar(&g.label, "gossip-label", discovery.DefaultLabel, "cluster label; members with another label never join")
	fs.StringVar(&g.zone, "zone", "", "locality label announced to the cluster")
	fs.DurationVar(&g.rejoin, "gossip-rejoin-interval", discovery.DefaultRejoinInterval,
		"join one seed this often, so that a member declared dead (a partition) finds the cluster again (negative: off)")
}

// config returns the gossip config the flags describe, for a member
// logging to log. Callers check that --gossip is set.
func (g *gossipFlags) config(log *zerolog.Logger) discovery.Config {
	cfg := discovery.DefaultConfig() // reads the key from $GRAFTLB_GOSSIP_KEY
	cfg.Local.Zone = g.zone
	cfg.BindAddr = g.bind
	cfg.AdvertiseAddr = g.advertise
	cfg.Join = g.join
	if g.key != "" {
		cfg.Key = g.key
	}
	cfg.Label = g.label
	cfg.RejoinInterval = g.rejoin
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
