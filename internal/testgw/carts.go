package testgw

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// CartSession is a stateful session with a cart, and what reading the
// cart back must give (cart.State: its items and total).
type CartSession struct {
	ID     protocol.SessionID
	Object uint64
	cart.State
	Owner string // the gateway that answered every call
}

// BuildCarts opens n sessions on c (NewSession each), each with a cart of
// 1 to 4 items, concurrently. It fails the test if a session's calls are
// answered by more than one gateway.
func BuildCarts(tb testing.TB, c *client.Conn, n int) []CartSession {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make([]CartSession, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cs, err := buildCart(ctx, c.NewSession(), i)
			if err != nil {
				errs <- fmt.Errorf("session %d: %w", i, err)
				return
			}
			out[i] = cs
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return out
}

func buildCart(ctx context.Context, s *client.Session, i int) (CartSession, error) {
	obj, err := s.New(ctx, "cart@1", "Cart")
	if err != nil {
		return CartSession{}, err
	}
	cs := CartSession{ID: s.ID(), Object: obj.ID()}
	sameOwner := func(gw string) bool {
		if cs.Owner == "" {
			cs.Owner = gw
		}
		return gw == cs.Owner
	}
	for j := 0; j < 1+i%4; j++ {
		name, price := fmt.Sprintf("item-%d", j), int64(100*(i+1)+j)
		res, err := obj.Call(ctx, "AddItem", name, price)
		if err != nil {
			return cs, err
		}
		var a cart.Added
		if err := res.Decode(&a); err != nil {
			return cs, err
		}
		if cs.State, err = cs.Add(a, name, price, sameOwner); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// VerifyCart reads a session's cart back over c (resuming the session)
// and returns the gateway that answered, or an error if the state is not
// exactly what was built there (cart.ErrMisrouted) or the call failed. A
// cs.Owner left empty accepts any gateway holding exactly that state (a
// session handed over by a draining gateway has a new owner).
func VerifyCart(ctx context.Context, c *client.Conn, cs CartSession) (string, error) {
	obj := c.ResumeSession(cs.ID).Object("cart@1", "Cart", cs.Object)
	var owner cart.Owner
	if cs.Owner != "" {
		owner = func(gw string) bool { return gw == cs.Owner }
	}
	return cs.Verify(func(method string, v any) error {
		res, err := obj.Call(ctx, method)
		if err != nil {
			return err
		}
		return res.Decode(v)
	}, owner)
}
