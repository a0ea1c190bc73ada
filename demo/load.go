package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/protocol"
)

// Load shape: modest on purpose, so that a laptop or two shared cores run
// it next to five gateways and a proxy without anything starving.
const (
	statelessWorkers = 4
	statelessPause   = 2 * time.Millisecond
	shoppers         = 8
	shopperConns     = 2
	thinkTime        = 5 * time.Millisecond
	callTimeout      = 5 * time.Second
	// A call answered UNAVAILABLE did not run (its gateway's connection had
	// just dropped): it is tried again after retryPause, for up to retryFor.
	retryPause = 5 * time.Millisecond
	retryFor   = 5 * time.Second
	// stopGraceLoad is how long workers get to finish the session they are
	// in when the load stops, before their calls are cancelled.
	stopGraceLoad = 3 * time.Second
)

var (
	ordersTarget = protocol.Target{Module: orders.Name + "@" + orders.Version, Type: "Orders", Method: "GetOrder"}
	cartModule   = cart.Name + "@" + cart.Version
	products     = [...]string{"apple", "bread", "cheese", "dates", "eggs", "figs", "grapes", "honey"}
)

// errStopped is a call given up because the demo is stopping: not a failure.
var errStopped = errors.New("demo: stopped")

// load drives the demo's traffic through the proxy: stateless workers
// sharing one connection, and shoppers that each open a cart session after
// another over a few more connections. Its goroutines stop in stop.
type load struct {
	// Immutable after newLoad.
	one    *client.Conn   // the single connection of the stateless workers
	conns  []*client.Conn // the shoppers' connections
	ctx    context.Context
	cancel context.CancelFunc // gives up the calls in flight
	halt   chan struct{}      // closed by stop: workers finish what they do and return

	cur      atomic.Pointer[tally]
	watch    atomic.Pointer[drainWatch]
	drained  sync.Map // gateway name → true: its carts may answer from another gateway
	wg       sync.WaitGroup
	stopOnce sync.Once

	// activeMu guards active: the shoppers' sessions in progress, by owner.
	activeMu sync.Mutex
	active   map[string]int
}

// newLoad dials the proxy: one connection for stateless calls and a few
// for carts.
func newLoad(ctx context.Context, target string) (*load, error) {
	l := &load{halt: make(chan struct{}), active: map[string]int{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.cur.Store(newTally())
	for i := 0; i <= shopperConns; i++ {
		c, err := client.Dial(ctx, target, client.Options{Name: "graftlb-demo"})
		if err != nil {
			l.stop()
			return nil, fmt.Errorf("dial the proxy at %s: %w", target, err)
		}
		if i == 0 {
			l.one = c
		} else {
			l.conns = append(l.conns, c)
		}
	}
	return l, nil
}

// begin makes t the tally that counts from now on.
func (l *load) begin(t *tally) { l.cur.Store(t) }

func (l *load) tally() *tally { return l.cur.Load() }

// stop lets the workers finish the session they are in (for up to
// stopGraceLoad), then cancels what is left and closes the connections.
func (l *load) stop() {
	l.stopOnce.Do(func() {
		close(l.halt)
		done := make(chan struct{})
		go func() {
			l.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(stopGraceLoad)
		select {
		case <-done:
		case <-t.C:
			l.cancel()
			<-done
		}
		t.Stop()
		l.cancel()
		for _, c := range append([]*client.Conn{l.one}, l.conns...) {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}

func (l *load) halted() bool {
	select {
	case <-l.halt:
		return true
	default:
		return false
	}
}

// pause sleeps for d unless the load is halted; false when halted.
func (l *load) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.halt:
		return false
	}
}

// call runs fn, trying it again while the answer is UNAVAILABLE (the call
// did not run), and counts failures and retries. It returns errStopped
// when ctx ends.
func (l *load) call(ctx context.Context, fn func(context.Context) (*client.Result, error)) (*client.Result, error) {
	giveUp := time.Now().Add(retryFor)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		res, err := fn(cctx)
		cancel()
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil:
			return nil, errStopped
		case errors.Is(err, protocol.ErrUnavailable) && time.Now().Before(giveUp):
			l.tally().retry()
			t := time.NewTimer(retryPause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, errStopped
			}
			continue
		}
		l.tally().fail(codeOf(err), err)
		return nil, err
	}
}

// startStateless starts the stateless workers: GetOrder calls through the
// one connection, each result checked against what any gateway computes.
func (l *load) startStateless() {
	for w := range statelessWorkers {
		l.wg.Add(1)
		go l.statelessWorker(w)
	}
}

func (l *load) statelessWorker(w int) {
	defer l.wg.Done()
	s := l.one.Session()
	req := client.Request{Target: ordersTarget, Stateless: true, Idempotent: true}
	for i := 0; !l.halted(); i++ {
		id := "o-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
		req.Args = []any{id}
		res, err := l.call(l.ctx, func(ctx context.Context) (*client.Result, error) { return s.Do(ctx, req) })
		if err == nil {
			var o orders.Order
			if err := res.Decode(&o); err != nil || o != orders.Make(id, o.Gateway) || o.Gateway == "" {
				l.tally().wrongResult(fmt.Sprintf("GetOrder(%q) = %+v (%v)", id, o, err))
			} else {
				l.tally().served(o.Gateway, true)
			}
		}
		if !l.pause(statelessPause) {
			return
		}
	}
}

// startShoppers starts the cart users, spread over the shoppers'
// connections.
func (l *load) startShoppers() {
	for i := range shoppers {
		l.wg.Add(1)
		go l.shopper(l.conns[i%len(l.conns)], uint64(i))
	}
}

// shopper opens one cart session after another: $new, 3 to 6 AddItem, then
// Total and Items checked against its own tally, then $release.
func (l *load) shopper(c *client.Conn, seed uint64) {
	defer l.wg.Done()
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	for !l.halted() {
		ct, err := l.openCart(l.ctx, c, true)
		for i := 3 + rng.IntN(4); err == nil && i > 0; i-- {
			l.pause(thinkTime)
			err = l.addItem(l.ctx, ct, rng)
		}
		if err == nil {
			l.pause(thinkTime)
			err = l.verifyCart(l.ctx, ct)
		}
		if err == nil {
			err = l.release(l.ctx, ct)
		}
		l.tally().ended(outcomeOf(err), ct.owner, err)
		if ct.owner != "" {
			l.activeMu.Lock()
			l.active[ct.owner]--
			l.activeMu.Unlock()
		}
		c.ForgetSession(ct.s)
		l.pause(thinkTime)
	}
}

// shopCart is a cart in a session of its own, with what its user put in it.
type shopCart struct {
	s       *client.Session
	obj     *client.Object
	started time.Time
	shopper bool   // a shopper's, not a long-lived cart
	owner   string // the gateway that answered its first AddItem, or took it over
	moved   bool   // a drained owner handed it over
	state   cart.State
}

// openCart starts a session and creates a cart in it. A failure leaves
// the returned cart without an object.
func (l *load) openCart(ctx context.Context, c *client.Conn, shopper bool) (*shopCart, error) {
	ct := &shopCart{s: c.NewSession(), started: time.Now(), shopper: shopper}
	l.tally().sessionStarted()
	_, err := l.call(ctx, func(ctx context.Context) (*client.Result, error) {
		obj, err := ct.s.New(ctx, cartModule, "Cart")
		ct.obj = obj
		return nil, err
	})
	if err == nil {
		l.tally().served("", false)
	}
	return ct, err
}

// addItem adds a random product and checks the answer against the cart's
// own state and owner (cart.State: a misrouted answer wraps
// cart.ErrMisrouted).
func (l *load) addItem(ctx context.Context, ct *shopCart, rng *rand.Rand) error {
	name := products[rng.IntN(len(products))]
	price := int64(50 + rng.IntN(950))
	res, err := l.call(ctx, func(ctx context.Context) (*client.Result, error) { return ct.obj.Call(ctx, "AddItem", name, price) })
	if err != nil {
		return err
	}
	var a cart.Added
	if err := res.Decode(&a); err != nil {
		return fmt.Errorf("%w: AddItem result: %v", cart.ErrMisrouted, err)
	}
	if ct.owner == "" && a.Gateway != "" {
		ct.owner = a.Gateway
		l.tally().placed(a.Gateway)
		if ct.shopper {
			l.activeMu.Lock()
			l.active[ct.owner]++
			l.activeMu.Unlock()
		}
		if w := l.watch.Load(); w != nil && w.gw == a.Gateway && ct.started.After(w.since) {
			w.hits.Add(1)
		}
	}
	if ct.state, err = ct.state.Add(a, name, price, l.ownerOf(ct)); err != nil {
		return err
	}
	l.tally().served(a.Gateway, false)
	return nil
}

// verifyCart reads the cart's total and items back and checks them, and
// the gateway that answered, against its own state.
func (l *load) verifyCart(ctx context.Context, ct *shopCart) error {
	_, err := ct.state.Verify(func(method string, v any) error {
		res, err := l.call(ctx, func(ctx context.Context) (*client.Result, error) { return ct.obj.Call(ctx, method) })
		if err != nil {
			return err
		}
		if err := res.Decode(v); err != nil {
			return fmt.Errorf("%w: %s result: %v", cart.ErrMisrouted, method, err)
		}
		l.tally().served(cart.Gateway(v), false)
		return nil
	}, l.ownerOf(ct))
	return err
}

// ownerOf accepts the answers of ct's owner, and of the gateway its
// drained owner handed it over to.
func (l *load) ownerOf(ct *shopCart) cart.Owner {
	return func(gw string) bool {
		l.handedOver(ct, gw)
		return gw == ct.owner
	}
}

// handedOver takes gw as ct's owner if ct's owner was drained (and so
// handed its sessions over to other gateways, protocol/SPEC.md section 7)
// and reports whether it did. The caller still checks the state exactly.
func (l *load) handedOver(ct *shopCart, gw string) bool {
	if gw == "" || ct.owner == "" || gw == ct.owner {
		return false
	}
	if _, ok := l.drained.Load(ct.owner); !ok {
		return false
	}
	if ct.shopper {
		l.activeMu.Lock()
		l.active[ct.owner]--
		l.active[gw]++
		l.activeMu.Unlock()
	}
	ct.owner, ct.moved = gw, true
	return true
}

// release frees the cart on its gateway.
func (l *load) release(ctx context.Context, ct *shopCart) error {
	_, err := l.call(ctx, func(ctx context.Context) (*client.Result, error) { return nil, ct.obj.Release(ctx) })
	if err == nil {
		l.tally().served(ct.owner, false)
	}
	return err
}

// inProgress returns how many shopper sessions gw holds now.
func (l *load) inProgress(gw string) int {
	l.activeMu.Lock()
	defer l.activeMu.Unlock()
	return l.active[gw]
}

// forEach runs fn for every cart, a few at a time, and returns each one's
// outcome in order, counted in the tally.
func (l *load) forEach(ctx context.Context, carts []*shopCart, fn func(*shopCart, *rand.Rand) error) []outcome {
	out := make([]outcome, len(carts))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, ct := range carts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			err := fn(ct, rng)
			out[i] = outcomeOf(err)
			l.tally().ended(out[i], ct.owner, err)
		}()
	}
	wg.Wait()
	return out
}

// openResidents creates n carts that live through the whole demo, each
// with three items, read back once. The ones that failed are left out.
func (l *load) openResidents(ctx context.Context, n int) (carts []*shopCart, outs []outcome) {
	all := make([]*shopCart, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			ct, err := l.openCart(ctx, l.conns[i%len(l.conns)], false)
			for k := 0; err == nil && k < 3; k++ {
				err = l.addItem(ctx, ct, rng)
			}
			if err == nil {
				err = l.verifyCart(ctx, ct)
			}
			all[i], errs[i] = ct, err
		}()
	}
	wg.Wait()
	for i, ct := range all {
		o := outcomeOf(errs[i])
		l.tally().ended(o, ct.owner, errs[i])
		outs = append(outs, o)
		if o == verified {
			carts = append(carts, ct)
		}
	}
	return carts, outs
}
