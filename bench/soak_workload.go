package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/protocol"
)

// The soak's churn, besides the mixed load (see soak).
const (
	// soakFillFactor is the churn's rate of new sessions over the rate at
	// which the table frees slots when full (MaxSessions per SessionIdle):
	// above 1, so that the table fills and stays full.
	soakFillFactor = 1.25
	// soakChurners is the number of churning users, each on one short-lived
	// connection at a time.
	soakChurners = 8
	// soakCartsPerConn is the carts a churned connection creates before it
	// closes; one in soakReleaseEvery is released, the others forgotten.
	soakCartsPerConn = 8
	soakReleaseEvery = 4
	// soakOnewayEvery is the pause between the ONEWAY calls of the
	// long-lived ONEWAY user.
	soakOnewayEvery = 50 * time.Millisecond
	// soakEventsEvery is the pause between the rounds of events and
	// callbacks of the long-lived events user.
	soakEventsEvery = time.Second
	// soakTicks and soakCallbacks are the events and the callbacks of
	// one round (Ticker.Subscribe, Ticker.Each).
	soakTicks     = 3
	soakCallbacks = 2
)

// Slow readers: each sends a large PING every slowPingEvery and reads
// slowReadChunk of the PONGs every slowReadEvery, a quarter of what comes
// back, on a socket with a small receive buffer, so that the replies pile
// up in the proxy until it cuts the client off (--max-pending-write, or
// --write-timeout); it then dials again after slowRedial.
const (
	slowPingBody  = 256 << 10
	slowPingEvery = 250 * time.Millisecond
	slowReadChunk = 32 << 10
	slowReadEvery = 100 * time.Millisecond
	slowRedial    = time.Second
	slowRcvbuf    = 4 << 10
)

// SoakWorkload counts what the soak's churn did besides the mixed load.
type SoakWorkload struct {
	// ConnsOpened counts the short-lived connections opened (each closed
	// after a few carts).
	ConnsOpened int64 `json:"conns_opened"`
	// CartsForgotten and CartsReleased count carts created in sessions of
	// their own (a cart and an AddItem each): forgotten by the client
	// (they stay in the proxy's table and on their gateway until idle), or
	// released ($release) first.
	CartsForgotten int64 `json:"carts_forgotten"`
	CartsReleased  int64 `json:"carts_released"`
	// RefusedTableFull counts new sessions the proxy refused with
	// OVERLOADED because its table was full: expected once it is.
	RefusedTableFull int64 `json:"refused_table_full"`
	// Events and Callbacks count the tick events received and the
	// callbacks run (Ticker.Subscribe and Ticker.Each).
	Events    int64 `json:"events"`
	Callbacks int64 `json:"callbacks"`
	// Oneway counts the ONEWAY calls sent.
	Oneway int64 `json:"oneway"`
	// SlowConns counts the slow readers' connections, SlowCutoffs those
	// the proxy closed, SlowBytesRead what the slow readers read.
	SlowConns     int64 `json:"slow_conns"`
	SlowCutoffs   int64 `json:"slow_cutoffs"`
	SlowBytesRead int64 `json:"slow_bytes_read"`
	// Failures counts the churn's calls that failed, by code; the first
	// message of each is in FailureSamples.
	Failures       map[string]int64  `json:"failures"`
	FailureSamples map[string]string `json:"failure_samples,omitempty"`
}

// soakLoad is the soak's churn while it runs.
type soakLoad struct {
	tcp, ws   string // targets: tcp://, ws://
	proxyTCP  string // host:port of the proxy's TCP and WebSocket listeners
	proxyWS   string
	pace      *time.Ticker // one tick per new churned session
	stop      chan struct{}
	wg        sync.WaitGroup
	firstFull chan struct{} // closed at the first table-full refusal
	fullOnce  sync.Once

	conns, forgotten, released, refused atomic.Int64
	events, callbacks, oneway           atomic.Int64
	slowConns, slowCutoffs, slowBytes   atomic.Int64

	mu       sync.Mutex
	failures map[string]int64
	samples  map[string]string
}

// startSoakLoad starts the churn against the proxy's listeners: churning
// users at rate new sessions per second, a long-lived ONEWAY user, a
// long-lived events user and two slow readers (TCP and WebSocket).
func startSoakLoad(proxy *Proc, rate float64) *soakLoad {
	w := &soakLoad{tcp: "tcp://" + proxy.Addr.TCP, proxyTCP: proxy.Addr.TCP, proxyWS: proxy.Addr.WS,
		pace: time.NewTicker(time.Duration(float64(time.Second) / rate)), stop: make(chan struct{}),
		firstFull: make(chan struct{}), failures: map[string]int64{}, samples: map[string]string{}}
	if proxy.Addr.WS != "" {
		w.ws = "ws://" + proxy.Addr.WS + protocol.WSPath
	}
	run := func(fn func()) {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			fn()
		}()
	}
	for i := range soakChurners {
		run(func() { w.churn(i) })
	}
	run(w.onewayUser)
	run(w.eventsUser)
	run(func() { w.slowReader(false) })
	if w.proxyWS != "" {
		run(func() { w.slowReader(true) })
	}
	return w
}

// halt stops the churn, waits for it, and returns its counts.
func (w *soakLoad) halt() SoakWorkload {
	close(w.stop)
	w.pace.Stop()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return SoakWorkload{ConnsOpened: w.conns.Load(), CartsForgotten: w.forgotten.Load(), CartsReleased: w.released.Load(),
		RefusedTableFull: w.refused.Load(), Events: w.events.Load(), Callbacks: w.callbacks.Load(), Oneway: w.oneway.Load(),
		SlowConns: w.slowConns.Load(), SlowCutoffs: w.slowCutoffs.Load(), SlowBytesRead: w.slowBytes.Load(),
		Failures: maps.Clone(w.failures), FailureSamples: maps.Clone(w.samples)}
}

func (w *soakLoad) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause waits d or until the churn stops, and reports whether to go on.
func (w *soakLoad) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-t.C:
		return true
	}
}

// tick waits for the pacer's next tick; false once the churn stops.
func (w *soakLoad) tick() bool {
	select {
	case <-w.stop:
		return false
	case <-w.pace.C:
		return true
	}
}

// failed counts a failed call, or a refusal by a full table.
func (w *soakLoad) failed(err error) {
	if isTableFull(err) {
		w.refused.Add(1)
		w.fullOnce.Do(func() { close(w.firstFull) })
		return
	}
	w.failedAs(codeOf(err), err.Error())
}

func (w *soakLoad) failedAs(code, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failures[code] == 0 {
		w.samples[code] = msg
	}
	w.failures[code]++
}

// isTableFull reports whether err is the proxy's refusal of a new session
// because its session table is full.
func isTableFull(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == protocol.CodeOverloaded && strings.Contains(pe.Message, "session table is full")
}

func soakCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), DefaultCallTimeout)
}

// churn opens connections one after another, over TCP and WebSocket in
// turn: each makes a stateless call, creates soakCartsPerConn carts at the
// pacer's rate, has a round of events and callbacks, sends ONEWAY calls
// and closes at once.
func (w *soakLoad) churn(i int) {
	for n := i; !w.stopped(); n++ {
		target := w.tcp
		if n%2 == 1 && w.ws != "" {
			target = w.ws
		}
		w.churnConn(target)
	}
}

func (w *soakLoad) churnConn(target string) {
	ctx, cancel := soakCtx()
	c, err := client.Dial(ctx, target, client.Options{})
	cancel()
	if err != nil {
		w.failed(err)
		w.pause(time.Second)
		return
	}
	defer c.Close()
	w.conns.Add(1)
	ctx, cancel = soakCtx()
	_, err = c.Session().Do(ctx, client.Request{Target: targetGetOrder, Args: []any{"o-soak"}, Stateless: true, Idempotent: true})
	cancel()
	if err != nil {
		w.failed(err)
	}
	for j := range soakCartsPerConn {
		if !w.tick() {
			return
		}
		w.cart(c, j%soakReleaseEvery == soakReleaseEvery-1)
	}
	w.eventsRound(c.Session(), "churn-"+strconv.FormatInt(w.conns.Load(), 10))
	w.sendOneway(c.Session(), 3) // closing right after: they may be in flight
}

// cart creates a cart in a new session of c and adds an item, then
// releases it or forgets it.
func (w *soakLoad) cart(c *client.Conn, release bool) {
	s := c.NewSession()
	defer c.ForgetSession(s)
	ctx, cancel := soakCtx()
	defer cancel()
	obj, err := s.New(ctx, cart.Name+"@"+cart.Version, "Cart")
	if err != nil {
		w.failed(err)
		return
	}
	res, err := obj.Call(ctx, "AddItem", "soak", int64(100))
	if err != nil {
		w.failed(err)
		return
	}
	var a cart.Added
	if err := res.Decode(&a); err != nil || a.Items != 1 || a.Total != 100 {
		w.failedAs(codeMisrouted, fmt.Sprintf("AddItem to a new cart answered %+v (%v)", a, err))
		return
	}
	if !release {
		w.forgotten.Add(1)
		return
	}
	if err := obj.Release(ctx); err != nil {
		w.failed(err)
		return
	}
	w.released.Add(1)
}

// eventsRound has s subscribe to soakTicks events of topic (each must
// arrive before the call's result) and makes a call that calls back
// soakCallbacks times.
func (w *soakLoad) eventsRound(s *client.Session, topic string) {
	var got atomic.Int64
	s.Handle(ticker.EventName, func(e client.Event) {
		var t ticker.Tick
		if e.Decode(&t) == nil && t.Topic == topic {
			got.Add(1)
		}
	})
	ctx, cancel := soakCtx()
	defer cancel()
	if _, err := s.Call(ctx, "ticker@1.Ticker.Subscribe", topic, soakTicks); err != nil {
		w.failed(err)
		return
	}
	n := got.Load()
	w.events.Add(n)
	if n != soakTicks {
		w.failedAs("EVENTS_MISSING", fmt.Sprintf("%d of %d ticks of %s before Subscribe's result", n, soakTicks, topic))
	}
	var calls atomic.Int64
	ref := s.Callback(func(_ context.Context, args []protocol.RawValue) (any, error) {
		calls.Add(1)
		var i int64
		if err := protocol.Unmarshal(args[0], &i); err != nil {
			return nil, err
		}
		return i + 1, nil
	})
	defer s.Forget(ref)
	res, err := s.Call(ctx, "ticker@1.Ticker.Each", soakCallbacks, ref)
	w.callbacks.Add(calls.Load())
	if err != nil {
		w.failed(err)
		return
	}
	var sum int64
	if want := int64(soakCallbacks * (soakCallbacks + 1) / 2); res.Decode(&sum) != nil || sum != want {
		w.failedAs(codeBadResult, fmt.Sprintf("Each(%d) returned %d, want %d", soakCallbacks, sum, want))
	}
}

// sendOneway sends n ONEWAY Chaos.Sleep(0) calls: nothing comes back.
func (w *soakLoad) sendOneway(s *client.Session, n int) {
	for range n {
		ctx, cancel := soakCtx()
		_, err := s.Do(ctx, client.Request{Target: targetSleep, Args: []any{0}, Stateless: true, Oneway: true})
		cancel()
		if err != nil {
			w.failed(err)
			continue
		}
		w.oneway.Add(1)
	}
}

// longLived runs round on one connection to the proxy, redialled if it
// breaks, every d until the churn stops.
func (w *soakLoad) longLived(d time.Duration, round func(*client.Conn)) {
	ctx, cancel := soakCtx()
	c, err := client.Dial(ctx, w.tcp, client.Options{AutoReconnect: true})
	cancel()
	if err != nil {
		w.failed(err)
		return
	}
	defer c.Close()
	for w.pause(d) {
		round(c)
	}
}

func (w *soakLoad) onewayUser() {
	w.longLived(soakOnewayEvery, func(c *client.Conn) { w.sendOneway(c.Session(), 1) })
}

func (w *soakLoad) eventsUser() {
	n := 0
	w.longLived(soakEventsEvery, func(c *client.Conn) {
		n++
		w.eventsRound(c.Session(), "long-"+strconv.Itoa(n))
	})
}

// slowReader dials the proxy over TCP or WebSocket, again and again, and
// reads its replies slowly (see slowPingBody).
func (w *soakLoad) slowReader(ws bool) {
	ping, err := protocol.AppendFrame(nil, &protocol.Frame{Type: protocol.TypePing, CallID: 1, Body: make([]byte, slowPingBody)})
	if err != nil {
		panic(err) // a constant frame: cannot fail
	}
	hello, err := protocol.AppendFrame(nil, &protocol.Frame{Type: protocol.TypeHello})
	if err != nil {
		panic(err)
	}
	for !w.stopped() {
		sc, err := dialSlow(w.proxyTCP, w.proxyWS, ws)
		if err != nil {
			w.failed(err)
			w.pause(slowRedial)
			continue
		}
		w.slowConns.Add(1)
		if w.slowConn(sc, hello, ping) {
			w.slowCutoffs.Add(1)
		}
		w.pause(slowRedial)
	}
}

// slowConn is a client connection written in the binding's framing and
// read as raw bytes (what is read is discarded).
type slowConn struct {
	nc net.Conn
	ws *websocket.Conn
}

// dialSlow dials the proxy with a small receive buffer.
func dialSlow(tcpAddr, wsAddr string, ws bool) (*slowConn, error) {
	d := net.Dialer{Timeout: DefaultCallTimeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	if !ws {
		nc, err := d.Dial("tcp", tcpAddr)
		if err != nil {
			return nil, err
		}
		return &slowConn{nc: nc}, nil
	}
	wd := websocket.Dialer{NetDial: d.Dial, HandshakeTimeout: DefaultCallTimeout, ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, _, err := wd.Dial("ws://"+wsAddr+protocol.WSPath, nil)
	if err != nil {
		return nil, err
	}
	return &slowConn{nc: c.NetConn(), ws: c}, nil
}

func (c *slowConn) send(frame []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(DefaultCallTimeout))
	if c.ws != nil {
		return c.ws.WriteMessage(websocket.BinaryMessage, frame)
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(frame)))
	_, err := (&net.Buffers{l[:], frame}).WriteTo(c.nc)
	return err
}

// slowConn sends HELLO, then PINGs, and reads slowly until the proxy
// closes the connection (it reports true) or the churn stops.
func (w *soakLoad) slowConn(c *slowConn, hello, ping []byte) (cut bool) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	defer func() {
		close(done)
		_ = c.nc.Close()
		wg.Wait()
	}()
	if c.send(hello) != nil {
		return true
	}
	wg.Add(1)
	go func() { // the sender
		defer wg.Done()
		t := time.NewTicker(slowPingEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if c.send(ping) != nil {
				return // cut off: the reader sees it too
			}
		}
	}()
	buf := make([]byte, slowReadChunk)
	for w.pause(slowReadEvery) {
		// A read that returns nothing within the write timeout is the
		// proxy's failure to cut the client off, not a slow read.
		_ = c.nc.SetReadDeadline(time.Now().Add(protocol.DefaultWriteTimeout + 5*time.Second))
		n, err := c.nc.Read(buf)
		w.slowBytes.Add(int64(n))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				w.failedAs("SLOW_READER_STUCK", fmt.Sprintf("the proxy neither wrote nor closed for %v", protocol.DefaultWriteTimeout+5*time.Second))
			}
			return true
		}
	}
	return false
}
