package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/protocol"
)

// Executor runs a CALL frame on a gateway and answers it once: with the
// gateway's RESULT or ERROR, or with an ERROR and a non-nil err when the
// gateway could not be reached or was lost with the call (it may have
// run). Link is one.
type Executor interface {
	Exec(frame []byte, reply func(answer []byte, err error))
}

// Defaults of SubscriberConfig.
const (
	DefaultDurableWorkers = 16
	DefaultAckWait        = 5 * time.Second
	DefaultMaxDeliver     = 5
)

// SubscriberConfig configures a gateway's side of the NATS transport.
type SubscriberConfig struct {
	// URL is the NATS server or cluster.
	URL string
	// Gateway names the gateway: the connection's name and the
	// Graftlb-Gateway header of its answers.
	Gateway string
	// Modules are the module@version names to subscribe to.
	Modules []string
	// Queue, Fanout and Durable say which subjects to subscribe to (all
	// three when none is set).
	Queue, Fanout, Durable bool
	// Subjects names the subjects (default prefix "graftlb").
	Subjects Subjects
	// Exec runs the calls (a Link to the gateway).
	Exec Executor
	// MaxFrame is the largest call accepted (default 1 MiB); larger
	// messages are answered TOO_LARGE.
	MaxFrame int
	// DurableWorkers is how many durable calls run at once (default 16):
	// each worker pulls one message (prefetch 1) when it is free.
	DurableWorkers int
	// AckWait is how long JetStream waits for the ack of a durable call
	// before it delivers it again (default 5s). A worker running a call
	// tells JetStream it is in progress every AckWait/3, so only a gateway
	// that died (or hangs) lets the call go to another.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one durable call (default 5).
	MaxDeliver int
	// DurableTTL and DedupWindow configure the stream if this side creates
	// it (the proxy's defaults).
	DurableTTL, DedupWindow time.Duration
	// Logger receives the subscriber's logs (default: none).
	Logger *zerolog.Logger
}

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if !c.Queue && !c.Fanout && !c.Durable {
		c.Queue, c.Fanout, c.Durable = true, true, true
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = protocol.DefaultMaxFrame
	}
	if c.DurableWorkers <= 0 {
		c.DurableWorkers = DefaultDurableWorkers
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	c.Logger = sharedDefaults(&c.DurableTTL, &c.DedupWindow, c.Logger)
	return c
}

// Subscriber is a gateway's side of the NATS transport: it takes the calls
// of its modules from NATS, runs them through its Executor and answers on
// the reply subject.
type Subscriber struct {
	cfg  SubscriberConfig
	nc   *nats.Conn
	subs []*nats.Subscription
	stop context.CancelFunc
	wg   sync.WaitGroup // durable workers and calls running

	mu     sync.Mutex // guards closed, and wg.Add against Close's Wait
	closed bool

	// Counters are what this side refused, lost or ran.
	Counters Counters
}

// Subscribe connects to NATS and subscribes to cfg's modules.
func Subscribe(cfg SubscriberConfig) (*Subscriber, error) {
	cfg = cfg.withDefaults()
	if cfg.Exec == nil {
		return nil, errors.New("transport: subscriber without an executor")
	}
	s := &Subscriber{cfg: cfg}
	log := cfg.Logger
	nc, err := nats.Connect(cfg.URL, append(connectOptions("graftlb-gateway-"+cfg.Gateway, log, &s.Counters),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.Counters.Disconnects.Add(1)
			log.Warn().AnErr("reason", err).Msg("nats connection lost; reconnecting")
		}))...)
	if err != nil {
		return nil, fmt.Errorf("transport: connect to nats %s: %w", cfg.URL, err)
	}
	s.nc = nc
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	for _, mod := range cfg.Modules {
		if err := s.subscribe(ctx, mod); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Subscriber) subscribe(ctx context.Context, module string) error {
	subj := s.cfg.Subjects
	if s.cfg.Queue {
		q := subj.Queue(module)
		sub, err := s.nc.QueueSubscribe(q, q, s.onCall)
		if err != nil {
			return fmt.Errorf("transport: subscribe %s: %w", q, err)
		}
		s.subs = append(s.subs, sub)
	}
	if s.cfg.Fanout {
		sub, err := s.nc.Subscribe(subj.Fanout(module), s.onCall)
		if err != nil {
			return fmt.Errorf("transport: subscribe %s: %w", subj.Fanout(module), err)
		}
		s.subs = append(s.subs, sub)
	}
	for _, sub := range s.subs {
		_ = sub.SetPendingLimits(65536, 64<<20) // bounded: nats.go drops past these, reported
	}
	if s.cfg.Durable {
		return s.consume(ctx, module)
	}
	return nil
}

// Close unsubscribes, lets the calls running finish (their answers still
// go out), and closes the connection. It does not close the Executor.
func (s *Subscriber) Close() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	s.nc.Close()
}

// Connected reports whether the subscriber is connected to NATS.
func (s *Subscriber) Connected() bool { return s.nc.IsConnected() }

// check decodes a message into a call frame and applies its headers: it
// returns the frame to run (a copy with the deadline field set to the time
// left), or the ERROR to answer.
func (s *Subscriber) check(subject string, h nats.Header, data []byte) (frame []byte, deadline time.Time, refusal *protocol.Error) {
	log := s.cfg.Logger
	if v := h.Get(HeaderVersion); v != "" && v != Version {
		s.Counters.bad(log, kindMalformed, subject, "message of transport version "+v)
		return nil, deadline, protocol.Errorf(protocol.CodeUnsupportedVersion, "transport version %q is not %s", v, Version)
	}
	if len(data) > s.cfg.MaxFrame {
		s.Counters.bad(log, kindOversized, subject, "call over the frame limit")
		return nil, deadline, protocol.Errorf(protocol.CodeTooLarge, "call of %d bytes exceeds the gateway's limit %d", len(data), s.cfg.MaxFrame)
	}
	var f protocol.Frame
	if err := protocol.Decode(data, &f); err != nil || f.Type != protocol.TypeCall {
		s.Counters.bad(log, kindMalformed, subject, "message is not a CALL frame")
		return nil, deadline, protocol.Errorf(protocol.CodeBadFrame, "the message is not a CALL frame")
	}
	if !f.Flags.Has(protocol.FlagStateless) || f.Object != 0 && !f.Flags.Has(FlagNotBefore) {
		s.Counters.bad(log, kindMalformed, subject, "a stateful call over NATS")
		return nil, deadline, protocol.Errorf(protocol.CodeBadArgs, "only stateless static calls travel over NATS")
	}
	deadline, ok := parseMillis(h.Get(HeaderDeadline))
	if !ok {
		s.Counters.bad(log, kindMalformed, subject, "malformed "+HeaderDeadline+" header")
		return nil, deadline, protocol.Errorf(protocol.CodeBadFrame, "malformed %s header", HeaderDeadline)
	}
	frame = append([]byte(nil), data...)
	if f.Flags.Has(FlagNotBefore) {
		// The not-before time was the proxy's; the gateway gets a plain
		// static call.
		protocol.SetFlags(frame, f.Flags&^FlagNotBefore)
		setObject(frame, 0)
	}
	if !deadline.IsZero() {
		left := time.Until(deadline)
		if left <= 0 {
			s.Counters.bad(log, kindExpired, subject, "call arrived after its deadline")
			return nil, deadline, protocol.Errorf(protocol.CodeDeadlineExceeded, "the call's deadline passed before it reached a gateway")
		}
		protocol.SetDeadline(frame, uint32((left+time.Millisecond-1)/time.Millisecond))
	}
	return frame, deadline, nil
}

// setObject writes the object id field of a frame (offset 24, 8 bytes).
func setObject(frame []byte, id uint64) {
	for i := 0; i < 8; i++ {
		frame[24+i] = byte(id >> (56 - 8*i))
	}
}

// onCall runs a queue or fan-out call and answers on its reply subject
// (none for a ONEWAY call).
func (s *Subscriber) onCall(m *nats.Msg) {
	frame, _, refusal := s.check(m.Subject, m.Header, m.Data)
	if refusal != nil {
		s.respond(m, errorAnswer(m.Data, refusal))
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.respond(m, errorAnswer(m.Data, protocol.Errorf(protocol.CodeUnavailable, "the gateway is leaving NATS")))
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.cfg.Exec.Exec(frame, func(answer []byte, _ error) {
		defer s.wg.Done()
		s.Counters.Executed.Add(1)
		s.respond(m, answer)
	})
}

// respond answers m on its reply subject, naming the gateway.
func (s *Subscriber) respond(m *nats.Msg, answer []byte) {
	if m.Reply == "" || answer == nil {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(HeaderVersion, Version)
	r.Header.Set(HeaderGateway, s.cfg.Gateway)
	r.Data = answer
	_ = s.nc.PublishMsg(r)
}

// errorAnswer is an ERROR frame answering the call in data (its session,
// when its header is whole) with e.
func errorAnswer(data []byte, e *protocol.Error) []byte {
	return errorFrame(sessionOf(data), e.Code, e.Message, e.Type)
}

// consume starts the durable workers of module: each pulls one message
// when it is free (prefetch 1, as Graftcode's queue plugins), so no
// message waits in a gateway's buffer while its ack time runs out.
func (s *Subscriber) consume(ctx context.Context, module string) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("transport: jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ensureStream(sctx, js, s.cfg.Subjects, s.cfg.DurableTTL, s.cfg.DedupWindow); err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(sctx, s.cfg.Subjects.Stream(), jetstream.ConsumerConfig{
		Durable:       s.cfg.Subjects.Consumer(module),
		FilterSubject: s.cfg.Subjects.Durable(module),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		MaxAckPending: -1,
	})
	if err != nil {
		return fmt.Errorf("transport: durable consumer for %s: %w", module, err)
	}
	for range s.cfg.DurableWorkers {
		s.wg.Add(1)
		go s.worker(ctx, cons)
	}
	return nil
}

// worker pulls and runs durable calls until ctx ends.
func (s *Subscriber) worker(ctx context.Context, cons jetstream.Consumer) {
	defer s.wg.Done()
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				// Disconnected, or the consumer is gone: wait a moment.
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			continue
		}
		s.runDurable(m)
	}
}

// runDurable runs one durable call. An IDEMPOTENT call is acked after it
// ran (a gateway that dies first leaves it to another); any other is acked
// before it starts, so it runs at most once.
func (s *Subscriber) runDurable(m jetstream.Msg) {
	h := m.Headers()
	if nb, ok := parseMillis(h.Get(HeaderNotBefore)); ok && time.Until(nb) > 0 {
		_ = m.NakWithDelay(time.Until(nb)) // early (clocks differ): again then
		return
	}
	frame, _, refusal := s.check(m.Subject(), h, m.Data())
	if refusal != nil {
		s.cfg.Logger.Debug().Str("code", refusal.Code.String()).Msg("durable call dropped: " + refusal.Message)
		_ = m.Term()
		return
	}
	var f protocol.Frame
	_ = protocol.Decode(frame, &f)
	idempotent := f.Flags.Has(protocol.FlagIdempotent)
	if !idempotent {
		if err := m.DoubleAck(context.Background()); err != nil {
			// Not acked: JetStream delivers it again; it did not run.
			return
		}
	}
	done := make(chan error, 1)
	s.Counters.Executed.Add(1)
	s.cfg.Exec.Exec(frame, func(_ []byte, err error) { done <- err })
	t := time.NewTicker(s.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			switch {
			case !idempotent:
			case err != nil:
				_ = m.Nak() // the gateway was lost with it: another runs it
			default:
				_ = m.Ack()
			}
			return
		case <-t.C:
			if idempotent {
				_ = m.InProgress()
			}
		}
	}
}
