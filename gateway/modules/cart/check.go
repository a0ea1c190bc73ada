package cart

import (
	"errors"
	"fmt"
	"slices"
)

// State is what a cart must hold: the items added, in order, and their
// total. A client that builds a cart (the bench, the demo, the tests)
// keeps one and checks every answer against it, so that a call that
// reached another gateway than the session's, or another session's cart,
// shows: the one cart-session verifier of the project.
type State struct {
	Items []string
	Total int64 // cents
}

// ErrMisrouted is wrapped by the error of an answer that shows another
// state than the session built, or that comes from a gateway the session
// is not on.
var ErrMisrouted = errors.New("misrouted")

// Owner says whether gateway gw may answer for the session. It may take gw
// as the session's owner (the first answer names it, or a drained owner
// handed the session over), so the checks call it once per answer, before
// they compare the state. A nil Owner accepts any gateway.
type Owner func(gw string) bool

func (o Owner) accepts(gw string) bool { return gw != "" && (o == nil || o(gw)) }

func misrouted(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMisrouted, fmt.Sprintf(format, args...))
}

// Add checks AddItem(name, price)'s answer a and returns the state after
// it.
func (s State) Add(a Added, name string, price int64, owner Owner) (State, error) {
	if !owner.accepts(a.Gateway) || a.Items != len(s.Items)+1 || a.Total != s.Total+price {
		return s, misrouted("AddItem #%d at total %d answered %+v", len(s.Items)+1, s.Total, a)
	}
	return State{Items: append(slices.Clip(s.Items), name), Total: s.Total + price}, nil
}

// CheckTotal checks a Total answer.
func (s State) CheckTotal(r TotalResult, owner Owner) error {
	if !owner.accepts(r.Gateway) || r.Total != s.Total {
		return misrouted("Total answered %+v, want %d", r, s.Total)
	}
	return nil
}

// CheckItems checks an Items answer.
func (s State) CheckItems(r ItemsResult, owner Owner) error {
	if !owner.accepts(r.Gateway) || !slices.Equal(r.Items, s.Items) {
		return misrouted("Items answered %+v, want %v", r, s.Items)
	}
	return nil
}

// Gateway returns the gateway a decoded result of the cart's (*Added,
// *TotalResult or *ItemsResult) names, or "".
func Gateway(v any) string {
	switch r := v.(type) {
	case *Added:
		return r.Gateway
	case *TotalResult:
		return r.Gateway
	case *ItemsResult:
		return r.Gateway
	}
	return ""
}

// Verify reads the cart back, Total then Items, and checks both answers.
// read makes the call named method on the cart and decodes its result
// into v; its errors are returned as they are. Verify returns the gateway
// that answered Total.
func (s State) Verify(read func(method string, v any) error, owner Owner) (string, error) {
	var tr TotalResult
	if err := read("Total", &tr); err != nil {
		return "", err
	}
	if err := s.CheckTotal(tr, owner); err != nil {
		return tr.Gateway, err
	}
	var ir ItemsResult
	if err := read("Items", &ir); err != nil {
		return tr.Gateway, err
	}
	return tr.Gateway, s.CheckItems(ir, owner)
}
