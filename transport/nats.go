package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/protocol"
)

// Defaults of Config.
const (
	DefaultFanoutWindow = time.Second
	DefaultNoDeadline   = 30 * time.Second
	DefaultDurableTTL   = 24 * time.Hour
	DefaultDedupWindow  = 2 * time.Minute
	DefaultMaxPending   = 65536
)

// Config configures the proxy's side of the NATS transport.
type Config struct {
	// URL is the NATS server or cluster (nats://host:port, comma-separated
	// for several).
	URL string
	// Subjects names the subjects (default prefix "graftlb").
	Subjects Subjects
	// Name names the connection on the server (default "graftlb-proxy").
	Name string
	// FanoutWindow is how long a fan-out call gathers answers (default
	// 1s); a call whose deadline is nearer gathers for 90% of the time it
	// has left, so that its RESULT arrives before its deadline.
	FanoutWindow time.Duration
	// NoDeadline is how long a queue call without a deadline waits for its
	// answer before it fails with UNAVAILABLE (default 30s, the RabbitMQ
	// plugin's rpcTimeoutMs).
	NoDeadline time.Duration
	// DurableTTL is the longest a durable call waits to run, and the age
	// at which the stream drops it (default 24h).
	DurableTTL time.Duration
	// DedupWindow is JetStream's duplicate window for durable calls
	// (default 2m).
	DedupWindow time.Duration
	// MaxPending caps queue and fan-out calls awaiting answers (default
	// 65536); more get OVERLOADED.
	MaxPending int
	// Logger receives the transport's logs (default: none).
	Logger *zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "graftlb-proxy"
	}
	if c.FanoutWindow <= 0 {
		c.FanoutWindow = DefaultFanoutWindow
	}
	if c.NoDeadline <= 0 {
		c.NoDeadline = DefaultNoDeadline
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	c.Logger = sharedDefaults(&c.DurableTTL, &c.DedupWindow, c.Logger)
	return c
}

// sharedDefaults fills the defaults both sides' configurations have: the
// stream's TTL and duplicate window, and the logger (returned).
func sharedDefaults(ttl, dedup *time.Duration, log *zerolog.Logger) *zerolog.Logger {
	if *ttl <= 0 {
		*ttl = DefaultDurableTTL
	}
	if *dedup <= 0 {
		*dedup = DefaultDedupWindow
	}
	if log == nil {
		nop := zerolog.Nop()
		log = &nop
	}
	return log
}

// NATS is the proxy's Transport over NATS: queue and fan-out calls are
// request/reply on core NATS with a correlation id in the reply subject,
// durable calls are JetStream publishes acknowledged once stored.
type NATS struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	inbox string // the reply subject of call n is inbox + "." + n
	sub   *nats.Subscription
	wg    sync.WaitGroup // durable publishes in flight
	stop  chan struct{}

	// Counters are what this side refused or lost.
	Counters Counters

	// mu guards the calls awaiting answers.
	mu     sync.Mutex
	calls  map[uint64]*waiter
	next   uint64
	closed bool

	streamMu    sync.Mutex // guards streamReady
	streamReady bool
}

var _ Transport = (*NATS)(nil)

// waiter is a queue or fan-out call awaiting answers.
type waiter struct {
	call    Call // Frame is nil: only the header fields are kept
	reply   func([]byte)
	timer   *time.Timer
	fanout  bool
	answers []answer // fan-out only
}

// Connect connects to the NATS server of cfg.URL and subscribes to the
// proxy's reply subjects. The connection is re-established with backoff
// whenever it drops; calls in flight then fail with UNAVAILABLE.
func Connect(cfg Config) (*NATS, error) {
	cfg = cfg.withDefaults()
	t := &NATS{cfg: cfg, calls: map[uint64]*waiter{}, stop: make(chan struct{})}
	log := cfg.Logger
	nc, err := nats.Connect(cfg.URL, append(connectOptions(cfg.Name, log, &t.Counters),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			t.Counters.Disconnects.Add(1)
			log.Warn().AnErr("reason", err).Msg("nats connection lost; reconnecting")
			t.failInFlight()
		}))...)
	if err != nil {
		return nil, fmt.Errorf("transport: connect to nats %s: %w", cfg.URL, err)
	}
	t.nc = nc
	if t.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("transport: jetstream: %w", err)
	}
	t.inbox = nats.NewInbox()
	if t.sub, err = nc.Subscribe(t.inbox+".*", t.onReply); err != nil {
		nc.Close()
		return nil, fmt.Errorf("transport: subscribe to replies: %w", err)
	}
	// A flood of replies must not grow memory without bound: the slow
	// consumer limits of nats.go drop (and report) what exceeds them.
	_ = t.sub.SetPendingLimits(65536, 64<<20)
	return t, nil
}

// connectOptions are the options both sides connect with: reconnect
// forever with exponential backoff (100ms doubling to 5s, with jitter).
func connectOptions(name string, log *zerolog.Logger, c *Counters) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := 100 * time.Millisecond << min(attempts, 6)
			return min(d, 5*time.Second)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats connection re-established")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				c.bad(log, kindOversized, subj, "messages dropped: the subscriber does not keep up")
				return
			}
			log.Warn().Err(err).Str("subject", subj).Msg("nats error")
		}),
	}
}

// URL is the server the transport is connected to.
func (t *NATS) URL() string { return t.nc.ConnectedUrlRedacted() }

// Close fails the calls awaiting answers with UNAVAILABLE and closes the
// connection once the durable publishes in flight ended.
func (t *NATS) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.stop)
	t.mu.Unlock()
	t.failInFlight()
	t.wg.Wait()
	t.nc.Close()
	return nil
}

// Call sends c by its mode (Transport).
func (t *NATS) Call(c *Call, reply func([]byte)) {
	if !t.nc.IsConnected() {
		reply(ErrorFrame(c, protocol.CodeUnavailable, "the NATS connection is down; the call was not sent"))
		return
	}
	switch c.Mode {
	case Queue:
		t.request(c, t.cfg.Subjects.Queue(string(c.Module)), false, reply)
	case Fanout:
		t.request(c, t.cfg.Subjects.Fanout(string(c.Module)), true, reply)
	case Durable:
		t.durable(c, reply)
	default:
		reply(ErrorFrame(c, protocol.CodeInternal, "transport: no NATS mode "+c.Mode.String()))
	}
}

// message builds the NATS message of c on subject, with its headers.
func message(c *Call, subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderVersion, Version)
	if !c.Deadline.IsZero() {
		m.Header.Set(HeaderDeadline, formatMillis(c.Deadline))
	}
	m.Data = c.Frame
	return m
}

// request publishes a queue or fan-out call. A ONEWAY call is answered nil
// as soon as it is published; another waits for its answer (or, fan-out,
// gathers answers) under a correlation id.
func (t *NATS) request(c *Call, subject string, fanout bool, reply func([]byte)) {
	m := message(c, subject)
	if c.Flags.Has(protocol.FlagOneway) {
		if err := t.nc.PublishMsg(m); err != nil {
			reply(ErrorFrame(c, protocol.CodeUnavailable, "publish to NATS: "+err.Error()))
			return
		}
		reply(nil)
		return
	}
	now := time.Now()
	wait := t.cfg.NoDeadline
	if fanout {
		wait = t.cfg.FanoutWindow
	}
	if !c.Deadline.IsZero() {
		left := c.Deadline.Sub(now)
		if fanout {
			wait = min(wait, left*9/10)
		} else {
			wait = left
		}
	}
	w := &waiter{call: *c, reply: reply, fanout: fanout}
	// c's slices are views of a buffer the caller reuses: keep copies.
	w.call.Frame, w.call.Type, w.call.Method = nil, nil, nil
	w.call.Module = bytes.Clone(c.Module)
	t.mu.Lock()
	if t.closed || len(t.calls) >= t.cfg.MaxPending {
		closed := t.closed
		t.mu.Unlock()
		if closed {
			reply(ErrorFrame(c, protocol.CodeUnavailable, "the proxy's NATS transport is closed"))
		} else {
			reply(ErrorFrame(c, protocol.CodeOverloaded, "too many calls awaiting answers over NATS"))
		}
		return
	}
	t.next++
	id := t.next
	t.calls[id] = w
	w.timer = time.AfterFunc(max(wait, 0), func() { t.expire(id) })
	t.mu.Unlock()
	m.Reply = t.inbox + "." + strconv.FormatUint(id, 10)
	if err := t.nc.PublishMsg(m); err != nil {
		if w := t.take(id); w != nil {
			reply(ErrorFrame(c, protocol.CodeUnavailable, "publish to NATS: "+err.Error()))
		}
	}
}

// take removes the waiter of call id, stopping its timer; nil if it was
// settled already.
func (t *NATS) take(id uint64) *waiter {
	t.mu.Lock()
	w := t.calls[id]
	delete(t.calls, id)
	t.mu.Unlock()
	if w != nil {
		w.timer.Stop()
	}
	return w
}

// expire settles call id when its time is up: a queue call with
// DEADLINE_EXCEEDED (UNAVAILABLE without a deadline), a fan-out call with
// the answers it gathered.
func (t *NATS) expire(id uint64) {
	t.mu.Lock()
	w := t.calls[id]
	delete(t.calls, id)
	t.mu.Unlock()
	if w == nil {
		return
	}
	switch {
	case w.fanout:
		w.reply(gathered(&w.call, w.answers))
	case w.call.Deadline.IsZero():
		w.reply(ErrorFrame(&w.call, protocol.CodeUnavailable,
			fmt.Sprintf("no answer over NATS within %s; the call may have run", t.cfg.NoDeadline)))
	default:
		w.reply(ErrorFrame(&w.call, protocol.CodeDeadlineExceeded, "the call's deadline passed waiting for its answer over NATS"))
	}
}

// onReply routes an answer to its call. A no-responders status (no
// gateway subscribes to the subject) fails the call with UNAVAILABLE at
// once; a fan-out call keeps gathering until its window ends.
func (t *NATS) onReply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		t.Counters.bad(t.cfg.Logger, kindUnknownReply, m.Subject, "reply with a malformed correlation id")
		return
	}
	if m.Header.Get("Status") == "503" {
		if w := t.take(id); w != nil {
			w.reply(ErrorFrame(&w.call, protocol.CodeUnavailable, "no gateway subscribes to "+string(w.call.Module)+" over NATS"))
		}
		return
	}
	var f protocol.Frame
	valid := protocol.Decode(m.Data, &f) == nil && (f.Type == protocol.TypeResult || f.Type == protocol.TypeError)
	t.mu.Lock()
	w := t.calls[id]
	if w != nil && w.fanout {
		w.answers = append(w.answers, answerOf(m, valid))
		t.mu.Unlock()
		if !valid {
			t.Counters.bad(t.cfg.Logger, kindMalformed, m.Subject, "malformed fan-out answer from gateway "+m.Header.Get(HeaderGateway))
		}
		return
	}
	delete(t.calls, id)
	t.mu.Unlock()
	if w == nil {
		t.Counters.bad(t.cfg.Logger, kindUnknownReply, m.Subject, "reply for no call in flight")
		return
	}
	w.timer.Stop()
	if !valid {
		t.Counters.bad(t.cfg.Logger, kindMalformed, m.Subject, "malformed answer from gateway "+m.Header.Get(HeaderGateway))
		w.reply(ErrorFrame(&w.call, protocol.CodeInternal, "the gateway's answer over NATS is not a RESULT or ERROR frame"))
		return
	}
	w.reply(append([]byte(nil), m.Data...))
}

// failInFlight fails every queue and fan-out call awaiting answers: the
// connection they were sent on is gone, and they may have run.
func (t *NATS) failInFlight() {
	t.mu.Lock()
	calls := t.calls
	t.calls = map[uint64]*waiter{}
	t.mu.Unlock()
	for _, w := range calls {
		w.timer.Stop()
		t.Counters.FailedInFlight.Add(1)
		w.reply(ErrorFrame(&w.call, protocol.CodeUnavailable, "the NATS connection broke with the call in flight; it may have run"))
	}
}

// ensureStream creates the durable calls' stream unless it exists.
func (t *NATS) ensureStream(ctx context.Context) error {
	t.streamMu.Lock()
	defer t.streamMu.Unlock()
	if t.streamReady {
		return nil
	}
	if err := ensureStream(ctx, t.js, t.cfg.Subjects, t.cfg.DurableTTL, t.cfg.DedupWindow); err != nil {
		return err
	}
	t.streamReady = true
	return nil
}
