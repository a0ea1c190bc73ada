package gateway_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
)

// Room is a chat room, an object that lives in the session that created
// it. The embedded mutex guards said; its Lock and Unlock are not remote.
type Room struct {
	sync.Mutex
	name string
	said []string
}

// newRoom is Room's constructor, called by $new.
func newRoom(name string) *Room { return &Room{name: name} }

// Say records text and publishes it to the room's topic, so that every
// session subscribed to it receives a "said" event.
func (r *Room) Say(ctx context.Context, text string) (int, error) {
	r.Lock()
	r.said = append(r.said, text)
	n := len(r.said)
	r.Unlock()
	return n, gateway.Publish(ctx, "room/"+r.name, "said", text)
}

// History returns what was said in the room.
func (r *Room) History() []string {
	r.Lock()
	defer r.Unlock()
	return append([]string(nil), r.said...)
}

// Debug is for the program's own use, not for clients.
func (r *Room) Debug() string { return fmt.Sprint(len(r.said)) }

// Watch is a method for Go code in the same process: no call can pass a
// channel, so registration skips it.
func (r *Room) Watch(ch chan<- string) {}

func chatModule() *gateway.Module {
	return gateway.NewModule("chat", "1").
		Func("Room", "Version", func() string { return "1.0" }, gateway.Stateless()).
		Type("Room", newRoom, gateway.Exclude("Debug"))
}

// A module registers static functions and stateful types. Registration
// skips the methods no call could reach and says which.
func ExampleModule() {
	m := chatModule()
	fmt.Println(m.Name(), m.Err())
	for _, err := range m.Skipped() {
		fmt.Println(err)
	}
	// Output:
	// chat@1 <nil>
	// gateway: chat@1.Room.Watch: parameter 1 (chan<- string): chan parameters cannot be decoded from CBOR (method skipped: not callable remotely)
}

// startChat runs a gateway hosting the chat module on a free loopback port.
func startChat(name string) *gateway.Gateway {
	cfg := gateway.DefaultConfig()
	cfg.Name = name
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", "" // port 0: a free port; no WebSocket, no HTTP
	cfg.Modules = []*gateway.Module{chatModule()}
	g, err := gateway.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	return g
}

// An embedded gateway serving a module, called with graftlb's client: a
// stateless function, an object, and an event of a topic the session
// subscribed to.
func ExampleNew() {
	g := startChat("gw1")
	defer g.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, "tcp://"+g.Addrs().TCP, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s := c.Session()
	events := make(chan client.Event, 1)
	s.OnEvent(func(e client.Event) { events <- e })

	r, err := s.CallStateless(ctx, "chat@1.Room.Version")
	if err != nil {
		log.Fatal(err)
	}
	var version string
	_ = r.Decode(&version)
	fmt.Println("version", version)

	if _, err := s.Call(ctx, "$topic@1.Topic.Subscribe", "room/lobby"); err != nil {
		log.Fatal(err)
	}
	room, err := s.New(ctx, "chat@1", "Room", "lobby")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := room.Call(ctx, "Say", "hello"); err != nil {
		log.Fatal(err)
	}
	e := <-events
	var text string
	_ = e.Decode(&text)
	fmt.Println("event", e.Type, e.Name, text)

	r, err = room.Call(ctx, "History")
	if err != nil {
		log.Fatal(err)
	}
	var history []string
	_ = r.Decode(&history)
	fmt.Println("history", history)

	_, err = room.Call(ctx, "Lock")
	fmt.Println(err)
	// Output:
	// version 1.0
	// event room/lobby said hello
	// history [hello]
	// NOT_FOUND: chat@1.Room has no instance method "Lock"
}

// Publish sends an event to every session subscribed to a topic, here two
// clients of the gateway.
func ExampleGateway_Publish() {
	g := startChat("gw1")
	defer g.Close()

	ctx := context.Background()
	var inboxes []chan client.Event
	for i := 0; i < 2; i++ {
		c, err := client.Dial(ctx, "tcp://"+g.Addrs().TCP, client.Options{})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		inbox := make(chan client.Event, 1)
		c.Session().OnEvent(func(e client.Event) { inbox <- e })
		if _, err := c.Session().Call(ctx, "$topic@1.Topic.Subscribe", "news"); err != nil {
			log.Fatal(err)
		}
		inboxes = append(inboxes, inbox)
	}
	if err := g.Publish("news", "flash", "gateway up"); err != nil {
		log.Fatal(err)
	}
	for i, inbox := range inboxes {
		e := <-inbox
		var text string
		_ = e.Decode(&text)
		fmt.Printf("client %d: %s %s %q\n", i, e.Type, e.Name, text)
	}
	// Output:
	// client 0: news flash "gateway up"
	// client 1: news flash "gateway up"
}
