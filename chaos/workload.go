package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/protocol"
)

// callTimeout is the deadline of every workload call: far above the
// latency a slow-gateway fault adds, so that only a fault that stops a
// call's gateway makes it expire.
const callTimeout = 3 * time.Second

// workload is the clients of a run: per proxy, workers of each kind, each
// on a connection of its own that redials after its proxy comes back.
type workload struct {
	h    *History
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []*client.Conn
}

// Workers per proxy, by kind.
const (
	idempotentWorkers    = 2
	nonIdempotentWorkers = 1
	onewayWorkers        = 1
	cartWorkers          = 3
	eventWorkers         = 1
)

func startWorkload(ctx context.Context, h *History, c *cluster, proxies []string, seed int64) (*workload, error) {
	w := &workload{h: h, stop: make(chan struct{})}
	id := 0
	for _, p := range proxies {
		addr := "tcp://" + c.proxyAddr(p)
		start := func(run func(*worker)) error {
			id++
			conn, err := client.Dial(ctx, addr, client.Options{AutoReconnect: true, DialTimeout: 2 * time.Second})
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.conns = append(w.conns, conn)
			w.mu.Unlock()
			wk := &worker{w: w, id: id, proxy: p, conn: conn, rng: rand.New(rand.NewPCG(uint64(seed), uint64(id)))}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				run(wk)
			}()
			return nil
		}
		for _, kind := range []struct {
			n   int
			run func(*worker)
		}{
			{idempotentWorkers, func(wk *worker) { wk.stateless(true) }},
			{nonIdempotentWorkers, func(wk *worker) { wk.stateless(false) }},
			{onewayWorkers, (*worker).oneway},
			{cartWorkers, (*worker).carts},
			{eventWorkers, (*worker).events},
		} {
			for i := 0; i < kind.n; i++ {
				if err := start(kind.run); err != nil {
					w.halt()
					return nil, err
				}
			}
		}
	}
	return w, nil
}

// halt stops the workers, waits for them and closes their connections.
func (w *workload) halt() {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		_ = c.Close()
	}
	w.conns = nil
}

type worker struct {
	w         *workload
	id        int
	proxy     string
	conn      *client.Conn
	rng       *rand.Rand
	cartsMade int
}

// pause waits d or until the workload stops, and reports whether to go on.
func (wk *worker) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wk.w.stop:
		return false
	case <-t.C:
		return true
	}
}

func (wk *worker) op(kind string) Op {
	return Op{Worker: wk.id, Kind: kind, Proxy: wk.proxy, Start: wk.w.h.Now()}
}

func (wk *worker) record(o Op, err error) Op {
	o.End = wk.w.h.Now()
	if err != nil {
		o.Code, o.Detail = codeOf(err), err.Error()
	}
	wk.w.h.Add(o)
	return o
}

// codeOf names an error as the history does (client.Code).
func codeOf(err error) string { return client.Code(err) }

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// stateless makes GetOrder calls, IDEMPOTENT or not.
func (wk *worker) stateless(idempotent bool) {
	s := wk.conn.Session()
	for wk.pause(time.Duration(10+wk.rng.IntN(20)) * time.Millisecond) {
		o := wk.op(OpStateless)
		o.Idempotent = idempotent
		ctx, cancel := callCtx()
		res, err := s.Do(ctx, client.Request{Target: protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"},
			Args: []any{"o-1"}, Stateless: true, Idempotent: idempotent})
		cancel()
		if err == nil {
			var r struct {
				Gateway string `cbor:"gateway"`
			}
			err = res.Decode(&r)
			o.Gateway = r.Gateway
		}
		wk.record(o, err)
	}
}

// oneway sends ONEWAY calls: only a local failure comes back.
func (wk *worker) oneway() {
	s := wk.conn.Session()
	for wk.pause(time.Duration(20+wk.rng.IntN(20)) * time.Millisecond) {
		o := wk.op(OpOneway)
		ctx, cancel := callCtx()
		_, err := s.Do(ctx, client.Request{Target: protocol.Target{Module: "chaos@1", Type: "Chaos", Method: "Sleep"},
			Args: []any{0}, Stateless: true, Oneway: true})
		cancel()
		wk.record(o, err)
	}
}

// carts runs carts one after another: a new session and cart, a few
// AddItem calls with pauses, then a read-back of every item and the
// total. A call that did not run (UNAVAILABLE and the like) is tried
// again; one that may have run gives the cart up (its state is then
// unknown), as does a lost session.
func (wk *worker) carts() {
	for {
		select {
		case <-wk.w.stop:
			return
		default:
		}
		wk.cartsMade++
		wk.cart(wk.cartsMade)
	}
}

func (wk *worker) cart(n int) {
	s := wk.conn.NewSession()
	defer wk.conn.ForgetSession(s)
	base := func(kind string) Op {
		o := wk.op(kind)
		o.Cart, o.Session = n, s.ID().String()
		return o
	}
	var obj *client.Object
	for {
		o := base(OpCartNew)
		ctx, cancel := callCtx()
		var err error
		obj, err = s.New(ctx, "cart@1", "Cart")
		cancel()
		if o = wk.record(o, err); o.OK() {
			break
		}
		if !notRun[o.Code] || !wk.pause(50*time.Millisecond) {
			return
		}
	}
	items := 3 + wk.rng.IntN(6)
	for i := 0; i < items; {
		if !wk.pause(time.Duration(50+wk.rng.IntN(250)) * time.Millisecond) {
			return
		}
		price := int64(100 + wk.rng.IntN(900))
		o := base(OpCartAdd)
		o.Name = ItemName(i, price)
		ctx, cancel := callCtx()
		res, err := obj.Call(ctx, "AddItem", o.Name, price)
		cancel()
		if err == nil {
			var a cart.Added
			err = res.Decode(&a)
			o.Items, o.Total, o.Gateway = a.Items, a.Total, a.Gateway
		}
		if o = wk.record(o, err); o.OK() {
			i++
		} else if !notRun[o.Code] {
			return
		}
	}
	for {
		o := base(OpCartRead)
		ctx, cancel := callCtx()
		res, err := obj.Call(ctx, "Items")
		var ir cart.ItemsResult
		if err == nil {
			err = res.Decode(&ir)
		}
		var tr cart.TotalResult
		if err == nil {
			res, err = obj.Call(ctx, "Total")
			if err == nil {
				err = res.Decode(&tr)
			}
		}
		cancel()
		o.Names, o.Total, o.Gateway = ir.Items, tr.Total, ir.Gateway
		if err == nil && tr.Gateway != ir.Gateway {
			o.Detail = fmt.Sprintf("Items answered by %s, Total by %s", ir.Gateway, tr.Gateway)
		}
		if o = wk.record(o, err); o.OK() || !notRun[o.Code] || !wk.pause(50*time.Millisecond) {
			return
		}
	}
}

// events subscribes a session to ticks of a topic of its own and has
// callbacks made to it: every tick and callback must be its own. A lost
// session (its gateway was killed) is replaced by a new one.
func (wk *worker) events() {
	for round := 0; ; {
		s := wk.conn.NewSession()
		var lost bool
		round, lost = wk.eventSession(s, round)
		wk.conn.ForgetSession(s)
		if !lost {
			return
		}
	}
}

// eventSession runs rounds of events and callbacks in s until the
// workload stops (lost false) or s is lost (true).
func (wk *worker) eventSession(s *client.Session, round int) (int, bool) {
	prefix := fmt.Sprintf("w%d-", wk.id)
	var mu sync.Mutex
	var got []int
	topic := ""
	s.OnEvent(func(e client.Event) {
		var t ticker.Tick
		if e.Name != ticker.EventName || e.Decode(&t) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.HasPrefix(t.Topic, prefix) {
			o := wk.op(OpForeignEvent)
			o.Session, o.Detail = s.ID().String(), fmt.Sprintf("tick %d of topic %s from %s", t.Seq, t.Topic, t.Gateway)
			wk.record(o, nil)
			return
		}
		if t.Topic == topic {
			got = append(got, t.Seq)
		}
	})
	const ticks = 5
	for ; wk.pause(time.Duration(200+wk.rng.IntN(200)) * time.Millisecond); round++ {
		mu.Lock()
		topic, got = fmt.Sprintf("%s%d", prefix, round), nil
		mu.Unlock()
		o := wk.op(OpEvents)
		o.Session = s.ID().String()
		ctx, cancel := callCtx()
		_, err := s.Call(ctx, "ticker@1.Ticker.Subscribe", topic, ticks)
		cancel()
		mu.Lock()
		if err == nil && len(got) != ticks {
			o.Detail = fmt.Sprintf("got ticks %v of topic %s before its result, want 0..%d", got, topic, ticks-1)
		}
		mu.Unlock()
		if o = wk.record(o, err); o.Code == "SESSION_LOST" {
			return round + 1, true
		}

		o = wk.op(OpCallback)
		o.Session = s.ID().String()
		ref := s.Callback(func(_ context.Context, args []protocol.RawValue) (any, error) {
			var i int64
			if err := protocol.Unmarshal(args[0], &i); err != nil {
				return nil, err
			}
			return i*10 + int64(wk.id), nil
		})
		ctx, cancel = callCtx()
		res, err := s.Call(ctx, "ticker@1.Ticker.Each", 3, ref)
		cancel()
		s.Forget(ref)
		var sum int64
		if err == nil {
			err = res.Decode(&sum)
		}
		if want := int64(30 + 3*wk.id); err == nil && sum != want {
			o.Detail = fmt.Sprintf("Each returned %d, want %d", sum, want)
		}
		if o = wk.record(o, err); o.Code == "SESSION_LOST" {
			return round + 1, true
		}
	}
	return round, false
}
