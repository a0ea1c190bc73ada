// Command chat hosts a chat room in an embedded graftlb gateway that joins
// a graftlb pool: run it three times and call it through `graftlb proxy`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
)

// Line is what a room broadcasts to the sessions subscribed to it.
type Line struct {
	Who  string `cbor:"who"`
	Text string `cbor:"text"`
}

// Room is a chat room, an object of the session that created it. It can
// move: a draining gateway hands it to the next one instead of losing it.
type Room struct{ name string }

func newRoom(name string) *Room { return &Room{name: name} }

// Snapshot and restoreRoom make a Room movable (gateway.Snapshotter).
func (r *Room) Snapshot() ([]byte, error)     { return []byte(r.name), nil }
func restoreRoom(state []byte) (*Room, error) { return &Room{name: string(state)}, nil }

// Say publishes a line to the room's topic: every subscribed session
// hears it, whichever gateway and proxy it is on.
func (r *Room) Say(ctx context.Context, who, text string) error {
	return gateway.Publish(ctx, "room/"+r.name, "line", Line{Who: who, Text: text})
}

// version is stateless: any gateway answers it, no session needed.
func version() string { return "chat/1" }

func main() {
	name := flag.String("name", "gw1", "gateway name")
	join := flag.String("join", "127.0.0.1:7950", "gossip address of a pool member (a proxy's --gossip)")
	flag.Parse()
	chat := gateway.NewModule("chat", "1").
		Func("Chat", "Version", version, gateway.Stateless()).
		Type("Room", newRoom, gateway.Restore(restoreRoom))
	gw, err := gateway.New(gateway.Config{Name: *name, TCP: "127.0.0.1:0", Modules: []*gateway.Module{chat}})
	if err != nil {
		log.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		log.Fatal(err)
	}
	cfg := discovery.DefaultConfig() // the gossip key from $GRAFTLB_GOSSIP_KEY
	cfg.BindAddr, cfg.Join = "127.0.0.1:0", []string{*join}
	pool, err := discovery.JoinGateway(gw, cfg) // leaves the pool when gw stops
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s serving %s, in the pool as %s\n", *name, gw.Addrs().TCP, pool.Gossip().LocalAddr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	_ = gw.Drain(context.Background()) // GOAWAY, hand the rooms over, stop
	<-pool.Done()
}
