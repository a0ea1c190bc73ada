package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/internal/testgw"
)

// startGateway runs an embedded gateway named gw1 with the example modules
// (orders@1, cart@1, ticker@1, chaos@1) on a loopback port, for the
// examples to call; it returns the gateway's TCP target.
func startGateway() (target string, stop func()) {
	cfg := gateway.DefaultConfig()
	cfg.Name = "gw1"
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", ""
	cfg.Modules = testgw.Modules()
	g, err := gateway.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(); err != nil {
		log.Fatal(err)
	}
	return "tcp://" + g.Addrs().TCP, func() { _ = g.Close() }
}

func ExampleDial() {
	target, stop := startGateway() // tcp://127.0.0.1:port of a gateway, or of a graftlb proxy
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
	if err != nil {
		log.Fatal(err)
	}
	v, err := res.Value() // or res.Decode(&someStruct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Server(), v)
	// Output: gw1 map[gateway:gw1 id:o-1 item:keyboard qty:1 total:4999]
}

func ExampleCallStateless() {
	target, stop := startGateway()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// orders.Order has cbor:"..." tags naming the keys of the result's map.
	o, err := client.CallStateless[orders.Order](ctx, c.Session(), "orders@1.Orders.GetOrder", "o-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d × %s = %d cents\n", o.ID, o.Qty, o.Item, o.Total)
	// Output: o-1: 1 × keyboard = 4999 cents
}

func ExampleSession_New() {
	target, stop := startGateway()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Session()
	if _, err := s.New(ctx, "cart", "Cart"); errors.Is(err, client.ErrBadTarget) {
		fmt.Println("refused:", err) // nothing was sent
	}
	obj, err := s.New(ctx, "cart@1", "Cart") // lives in the session, on this gateway
	if err != nil {
		log.Fatal(err)
	}
	defer obj.Release(ctx)
	if _, err := obj.Call(ctx, "AddItem", "apple", 120); err != nil {
		log.Fatal(err)
	}
	fmt.Println("object", obj.ID(), "of session", s.ID() == c.Session().ID())
	// Output:
	// refused: client: bad target "cart.Cart.$new": module "cart" must be name@version
	// object 1 of session true
}

func ExampleCall() {
	target, stop := startGateway()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	obj, err := c.Session().New(ctx, "cart@1", "Cart")
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range []struct {
		name  string
		price int64
	}{{"apple", 120}, {"pear", 80}} {
		added, err := client.Call[cart.Added](ctx, obj, "AddItem", it.name, it.price)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d items, %d cents, on %s\n", added.Items, added.Total, added.Gateway)
	}
	_, err = client.Call[cart.Added](ctx, obj, "AddItem", "plum", -1)
	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Code, ce.Type, ce.Message)
	}
	// Output:
	// 1 items, 120 cents, on gw1
	// 2 items, 200 cents, on gw1
	// APP_EXCEPTION InvalidPrice price must not be negative
}

func ExampleSession_Events() {
	target, stop := startGateway()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Session()
	events := s.Events(16) // up to 16 buffered; more are dropped, never blocking the connection
	defer events.Close()
	// ticker's Subscribe emits 3 "tick" events to this session, then returns.
	if _, err := client.CallStatic[int](ctx, s, "ticker@1.Ticker.Subscribe", "news", 3); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		e := <-events.C
		var t ticker.Tick
		if err := e.Decode(&t); err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Module, e.Name, t.Topic, t.Seq)
	}
	fmt.Println("dropped", events.Dropped())
	// Output:
	// ticker@1 tick news 0
	// ticker@1 tick news 1
	// ticker@1 tick news 2
	// dropped 0
}

func ExampleSession_Handle() {
	target, stop := startGateway()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Session()
	seqs := make(chan int, 8)
	// Handlers run on the connection's reader goroutine: keep them short.
	s.Handle(ticker.EventName, func(e client.Event) {
		var t ticker.Tick
		if e.Decode(&t) == nil {
			seqs <- t.Seq
		}
	})
	if _, err := s.Call(ctx, "ticker@1.Ticker.Subscribe", "news", 2); err != nil {
		log.Fatal(err)
	}
	// A method's events come before its result: both are here.
	fmt.Println(<-seqs, <-seqs)
	// Output: 0 1
}

// Topics reach every subscribed session, through whichever proxy holds it.
// A module publishes with the gateway's Publish; here the client side.
func ExampleSession_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "tcp://127.0.0.1:9990", client.Options{AutoReconnect: true}) // a graftlb proxy
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Session()
	s.Handle("message", func(e client.Event) {
		if room, ok := e.Topic(); ok {
			var text string
			_ = e.Decode(&text)
			fmt.Printf("[%s] %s\n", room, text)
		}
	})
	if err := s.Subscribe(ctx, "room-1"); err != nil { // renewed by itself after a reconnect
		log.Fatal(err)
	}
	defer s.Unsubscribe(ctx, "room-1")
	<-ctx.Done()
}

func ExampleSession_OnLost() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "tcp://127.0.0.1:9990", client.Options{}) // a graftlb proxy
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.NewSession()
	// The proxy says so when the session's gateway dies, and a call
	// answered SESSION_LOST says so too: the handler runs once, on a
	// goroutine of its own, so it may call through c.
	s.OnLost(func(err error) {
		log.Printf("session %v: %v; starting over", s.ID(), err)
		if _, err := c.NewSession().New(ctx, "cart@1", "Cart"); err != nil {
			log.Print(err)
		}
	})
	if _, err := s.New(ctx, "cart@1", "Cart"); err != nil {
		log.Fatal(err)
	}
	// From the loss on, s's stateful calls fail at once:
	// errors.Is(err, client.ErrSessionLost), as does s.Err().
}

func ExampleParseSessionID() {
	id, err := client.ParseSessionID("000102030405060708090a0b0c0d0e0f")
	fmt.Println(id, err)
	_, err = client.ParseSessionID("nope")
	fmt.Println(err)
	// Output:
	// 000102030405060708090a0b0c0d0e0f <nil>
	// protocol: session id must be 32 hex digits
}
