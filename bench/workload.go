package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/chaos"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// user is one virtual user, driven by one goroutine. step makes exactly
// one call and records it with latency measured from t0 (when the call was
// due in an open loop, or just before it in a closed one). finish ends the
// session in progress, if any, with the calls that takes.
type user interface {
	step(t0 time.Time)
	finish()
}

// env is what the users of a run share.
type env struct {
	cfg   Config
	rec   *recorder
	marks *marks
}

// callCtx bounds one call. It does not derive from the run's context: a
// call in flight when the run stops is let finish, so that stopping early
// does not turn into a burst of cancelled calls.
func (e *env) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.cfg.CallTimeout)
}

// newUser makes user i for the workload, on connection c.
func (e *env) newUser(i int, c *client.Conn) user {
	name := "u" + strconv.Itoa(i)
	switch e.cfg.Workload {
	case Stateful:
		return newCartUser(e, c, name)
	case Mixed:
		return &mixedUser{mix: e.cfg.Mix, orders: newOrdersUser(e, c, name), cart: newCartUser(e, c, name)}
	case Sleep:
		return &sleepUser{e: e, s: c.Session(), rng: rand.New(rand.NewPCG(uint64(i), 0x5eed))}
	default:
		return newOrdersUser(e, c, name)
	}
}

var (
	targetGetOrder = protocol.Target{Module: orders.Name + "@" + orders.Version, Type: "Orders", Method: "GetOrder"}
	targetSleep    = protocol.Target{Module: chaos.Name + "@" + chaos.Version, Type: "Chaos", Method: "Sleep"}
)

// ordersUser calls Orders.GetOrder with ids of its own and checks each
// order against what any gateway computes for that id. GetOrder is a pure
// read, so the calls say IDEMPOTENT: a proxy may retry them elsewhere.
type ordersUser struct {
	e      *env
	s      *client.Session
	prefix string
	n      int
}

func newOrdersUser(e *env, c *client.Conn, name string) *ordersUser {
	return &ordersUser{e: e, s: c.Session(), prefix: "o-" + name + "-"}
}

func (u *ordersUser) step(t0 time.Time) {
	u.n++
	id := u.prefix + strconv.Itoa(u.n)
	ctx, cancel := u.e.callCtx()
	res, err := u.s.Do(ctx, client.Request{Target: targetGetOrder, Args: []any{id}, Stateless: true, Idempotent: true})
	cancel()
	if err != nil {
		u.e.rec.fail(t0, codeOf(err), err.Error())
		return
	}
	if u.e.cfg.Durable {
		var a transport.Accepted
		if err := res.Decode(&a); err != nil || !a.Accepted || a.Duplicate {
			u.e.rec.fail(t0, codeBadResult, fmt.Sprintf("durable GetOrder(%q) answered %+v (%v)", id, a, err))
			return
		}
		u.e.rec.succeed(t0, "")
		return
	}
	var o orders.Order
	if err := res.Decode(&o); err != nil || o.Gateway == "" || o != orders.Make(id, o.Gateway) {
		u.e.rec.fail(t0, codeBadResult, fmt.Sprintf("GetOrder(%q) answered %+v (%v)", id, o, err))
		return
	}
	u.e.rec.succeed(t0, o.Gateway)
}

func (u *ordersUser) finish() {}

// sleepUser calls Chaos.Sleep for a random time in [SleepMin, SleepMax]
// (whole milliseconds): work that occupies a gateway without using a core.
type sleepUser struct {
	e   *env
	s   *client.Session
	rng *rand.Rand
}

func (u *sleepUser) step(t0 time.Time) {
	lo, hi := u.e.cfg.SleepMin.Milliseconds(), u.e.cfg.SleepMax.Milliseconds()
	ms := int(lo)
	if hi > lo {
		ms += u.rng.IntN(int(hi-lo) + 1)
	}
	ctx, cancel := u.e.callCtx()
	res, err := u.s.Do(ctx, client.Request{Target: targetSleep, Args: []any{ms}, Stateless: true, Idempotent: true})
	cancel()
	if err != nil {
		u.e.rec.fail(t0, codeOf(err), err.Error())
		return
	}
	var sl chaos.Slept
	if err := res.Decode(&sl); err != nil || sl.Ms != ms || sl.Gateway == "" {
		u.e.rec.fail(t0, codeBadResult, fmt.Sprintf("Sleep(%d) answered %+v (%v)", ms, sl, err))
		return
	}
	u.e.rec.succeed(t0, sl.Gateway)
}

func (u *sleepUser) finish() {}

// mixedUser interleaves stateless calls and cart sessions: a share mix of
// its calls are stateless, spread evenly (with mix 0.5 it alternates).
type mixedUser struct {
	mix    float64
	acc    float64
	orders *ordersUser
	cart   *cartUser
}

func (u *mixedUser) step(t0 time.Time) {
	u.acc += u.mix
	if u.acc >= 1 {
		u.acc--
		u.orders.step(t0)
		return
	}
	u.cart.step(t0)
}

func (u *mixedUser) finish() { u.cart.finish() }

// codeOf names a call's failure for the report's errors (client.Code).
func codeOf(err error) string { return client.Code(err) }
