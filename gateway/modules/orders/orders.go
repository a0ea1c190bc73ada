// Package orders is the stateless example module orders@1: orders are
// computed from their id, so any gateway answers the same and a test can
// check the content.
package orders

import (
	"context"
	"hash/fnv"
	"strconv"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
)

// Name and Version identify the module: orders@1.
const (
	Name    = "orders"
	Version = "1"
)

// MaxList is the largest ListOrders size.
const MaxList = 10000

// Order is the result of GetOrder.
type Order struct {
	ID      string `cbor:"id" json:"id"`
	Item    string `cbor:"item" json:"item"`
	Qty     int    `cbor:"qty" json:"qty"`
	Total   int64  `cbor:"total" json:"total"` // cents
	Gateway string `cbor:"gateway" json:"gateway"`
}

var items = [...]struct {
	name  string
	price int64
}{
	{"keyboard", 4999}, {"mouse", 1999}, {"monitor", 18999}, {"cable", 599},
	{"headset", 7999}, {"webcam", 5499}, {"dock", 12999}, {"chair", 24999},
}

// Make returns the order with the given id as any gateway named gw
// computes it: item and quantity derive from an FNV-1a hash of the id.
func Make(id, gw string) Order {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	x := h.Sum64()
	it := items[x%uint64(len(items))]
	qty := int(x>>8%9) + 1
	return Order{ID: id, Item: it.name, Qty: qty, Total: int64(qty) * it.price, Gateway: gw}
}

// Module returns orders@1 with the static type Orders:
//
//	Orders.GetOrder(id string) Order
//	Orders.ListOrders(size int) []Order   // ids "o-1".."o-size"; size ≤ MaxList
func Module() *gateway.Module {
	return gateway.NewModule(Name, Version).
		Func("Orders", "GetOrder", getOrder).
		Func("Orders", "ListOrders", listOrders)
}

func gatewayName(ctx context.Context) string {
	info, _ := gateway.InfoFrom(ctx)
	return info.Gateway
}

func getOrder(ctx context.Context, id string) (Order, error) {
	return Make(id, gatewayName(ctx)), nil
}

func listOrders(ctx context.Context, size int) ([]Order, error) {
	if size < 0 || size > MaxList {
		return nil, protocol.Errorf(protocol.CodeBadArgs, "size must be between 0 and %d, got %d", MaxList, size)
	}
	gw := gatewayName(ctx)
	out := make([]Order, size)
	for i := range out {
		out[i] = Make("o-"+strconv.Itoa(i+1), gw)
	}
	return out, nil
}
