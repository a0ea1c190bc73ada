// Package cart is the stateful example module cart@1: a Cart object lives
// in its session on the gateway that created it, so a bench can verify
// that every call of a session reached the same gateway.
package cart

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
)

// Name and Version identify the module: cart@1.
const (
	Name    = "cart"
	Version = "1"
)

// Added is the result of AddItem.
type Added struct {
	Items   int    `cbor:"items" json:"items"`
	Total   int64  `cbor:"total" json:"total"` // cents
	Gateway string `cbor:"gateway" json:"gateway"`
}

// TotalResult is the result of Total.
type TotalResult struct {
	Total   int64  `cbor:"total" json:"total"`
	Gateway string `cbor:"gateway" json:"gateway"`
}

// ItemsResult is the result of Items.
type ItemsResult struct {
	Items   []string `cbor:"items" json:"items"`
	Gateway string   `cbor:"gateway" json:"gateway"`
}

// Module returns cart@1 with the stateful type Cart ($new takes no
// arguments):
//
//	Cart.AddItem(name string, priceCents int64) Added
//	Cart.Total() TotalResult
//	Cart.Items() ItemsResult
//
// Carts are movable (gateway.Restore): a draining gateway hands them over
// to another gateway of its pool.
func Module() *gateway.Module {
	return gateway.NewModule(Name, Version).Type("Cart", New, gateway.Restore(Restore))
}

// Cart is a shopping cart. Its methods may be called concurrently.
type Cart struct {
	mu    sync.Mutex
	items []string
	total int64
}

// New is the constructor behind $new.
func New() *Cart { return &Cart{} }

// state is a cart's snapshot.
type state struct {
	Items []string `cbor:"items"`
	Total int64    `cbor:"total"`
}

// Snapshot returns the cart's items and total (gateway.Snapshotter).
func (c *Cart) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return protocol.Marshal(state{Items: c.items, Total: c.total})
}

// Restore rebuilds a cart from its Snapshot.
func Restore(b []byte) (*Cart, error) {
	var s state
	if err := protocol.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("cart snapshot: %w", err)
	}
	if s.Total < 0 {
		return nil, errors.New("cart snapshot: negative total")
	}
	return &Cart{items: s.Items, total: s.Total}, nil
}

func gatewayName(ctx context.Context) string {
	info, _ := gateway.InfoFrom(ctx)
	return info.Gateway
}

// AddItem adds an item at a price in cents.
func (c *Cart) AddItem(ctx context.Context, name string, priceCents int64) (Added, error) {
	if priceCents < 0 {
		return Added{}, &gateway.AppError{Type: "InvalidPrice", Message: "price must not be negative"}
	}
	if name == "" {
		return Added{}, errors.New("item name must not be empty")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, name)
	c.total += priceCents
	return Added{Items: len(c.items), Total: c.total, Gateway: gatewayName(ctx)}, nil
}

// Total returns the sum of the prices.
func (c *Cart) Total(ctx context.Context) TotalResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return TotalResult{Total: c.total, Gateway: gatewayName(ctx)}
}

// Items returns the item names in the order they were added.
func (c *Cart) Items(ctx context.Context) ItemsResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ItemsResult{Items: append([]string{}, c.items...), Gateway: gatewayName(ctx)}
}
