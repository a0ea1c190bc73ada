package discovery_test

import (
	"fmt"
	"log"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
)

// startGateway runs an embedded gateway with one module on a free
// loopback port.
func startGateway(name string) *gateway.Gateway {
	cfg := gateway.DefaultConfig()
	cfg.Name = name
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", ""
	cfg.Modules = []*gateway.Module{
		gateway.NewModule("greet", "1").Func("Greeter", "Hello", func(who string) string { return "hello " + who }),
	}
	g, err := gateway.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	return g
}

// Two embedded gateways in one process join a gossip pool, each with one
// call; the second names the first as its seed. Any member's Gossip
// reports the pool, as a proxy's does.
func ExampleJoinGateway() {
	var members []*discovery.Membership
	seeds := []string(nil)
	for _, name := range []string{"gw1", "gw2"} {
		g := startGateway(name)
		defer g.Close()
		cfg := discovery.DefaultConfig()
		cfg.BindAddr = "127.0.0.1:0" // port 0: a free port
		cfg.Join = seeds
		ms, err := discovery.JoinGateway(g, cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer ms.Close() // leaves the pool (deferred: runs before g.Close)
		members = append(members, ms)
		seeds = []string{ms.Gossip().LocalAddr()}
	}

	pool := members[0].Gossip()
	snap := pool.Snapshot()
	for len(snap.Gateways()) < 2 {
		snap = <-pool.Updates()
	}
	for _, m := range snap.Gateways() {
		fmt.Println(m.Name, m.State, m.Modules)
	}
	// Output:
	// gw1 ready [greet@1]
	// gw2 ready [greet@1]
}

// A static pool: gateways that do not gossip, such as Graftcode's own.
func ExampleParseBackends() {
	ms, err := discovery.ParseBackends([]string{
		"tcp://10.0.0.5:8990#name=gw1,weight=2,zone=eu-1",
		"ws://10.0.0.6:8888/ws",
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range discovery.NewStatic(ms).Snapshot().Members() {
		fmt.Printf("%s weight=%d zone=%q tcp=%q ws=%q\n", m.Name, m.Weight, m.Zone, m.Addrs.TCP, m.Addrs.WS)
	}
	// Output:
	// 10.0.0.6:8888 weight=1 zone="" tcp="" ws="10.0.0.6:8888"
	// gw1 weight=2 zone="eu-1" tcp="10.0.0.5:8990" ws=""
}
