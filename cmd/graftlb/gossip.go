package main

import (
	"errors"
	"flag"
	"os"
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

// start joins the cluster as local, or returns nil when --gossip is unset.
func (g *gossipFlags) start(local discovery.Member, log zerolog.Logger) (*discovery.Gossip, error) {
	if g.bind == "" {
		if g.advertise != "" {
			return nil, errors.New("--advertise needs --gossip: it is the address gossip announces")
		}
		return nil, nil
	}
	cfg := discovery.DefaultConfig()
	cfg.Local = local
	cfg.Local.Zone = g.zone
	cfg.BindAddr = g.bind
	cfg.AdvertiseAddr = g.advertise
	cfg.Join = g.join
	if g.key != "" {
		cfg.Key = g.key
	} else {
		cfg.Key = os.Getenv(discovery.KeyEnv)
	}
	cfg.Label = g.label
	cfg.RejoinInterval = g.rejoin
	cfg.Logger = log
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

// leave leaves the cluster cleanly, so that others see the departure at
// once instead of after failure detection.
func leave(gs *discovery.Gossip, log zerolog.Logger) {
	if gs == nil {
		return
	}
	// With nobody left to tell, Leave would wait its whole timeout.
	if len(gs.Members()) > 1 {
		if err := gs.Leave(2 * time.Second); err != nil {
			log.Warn().Err(err).Msg("gossip leave")
		}
	}
	_ = gs.Shutdown()
}
