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
// cart back must give.
type CartSession struct {
	ID     protocol.SessionID
	Object uint64
	Total  int64
	Items  int
	Owner  string // the gateway that answered every call
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
	for j := 0; j < 1+i%4; j++ {
		price := int64(100*(i+1) + j)
		res, err := obj.Call(ctx, "AddItem", fmt.Sprintf("item-%d", j), price)
		if err != nil {
			return cs, err
		}
		var a cart.Added
		if err := res.Decode(&a); err != nil {
			return cs, err
		}
		if cs.Owner != "" && a.Gateway != cs.Owner {
			return cs, fmt.Errorf("moved from %s to %s", cs.Owner, a.Gateway)
		}
		cs.Owner = a.Gateway
		cs.Total += price
		cs.Items++
		if a.Total != cs.Total || a.Items != cs.Items {
			return cs, fmt.Errorf("AddItem answered %+v, want total %d with %d items", a, cs.Total, cs.Items)
		}
	}
	return cs, nil
}

// VerifyCart reads a session's cart back over c (resuming the session)
// and returns the gateway that answered, or an error if the state is not
// exactly what was built there (misrouted) or the call failed. A cs.Owner
// left empty accepts any gateway holding exactly that state (a session
// handed over by a draining gateway has a new owner).
func VerifyCart(ctx context.Context, c *client.Conn, cs CartSession) (string, error) {
	obj := c.ResumeSession(cs.ID).Object("cart@1", "Cart", cs.Object)
	res, err := obj.Call(ctx, "Total")
	if err != nil {
		return "", err
	}
	var tr cart.TotalResult
	if err := res.Decode(&tr); err != nil {
		return "", err
	}
	res, err = obj.Call(ctx, "Items")
	if err != nil {
		return tr.Gateway, err
	}
	var ir cart.ItemsResult
	if err := res.Decode(&ir); err != nil {
		return tr.Gateway, err
	}
	if tr.Total != cs.Total || len(ir.Items) != cs.Items || (cs.Owner != "" && tr.Gateway != cs.Owner) {
		return tr.Gateway, fmt.Errorf("misrouted: total %d, %d items on %s; want %d, %d on %s",
			tr.Total, len(ir.Items), tr.Gateway, cs.Total, cs.Items, cs.Owner)
	}
	return tr.Gateway, nil
}
