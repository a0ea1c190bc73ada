package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/graftlb/graftlb/protocol"
)

// The reserved module of topics (protocol/SPEC.md section 7): a client
// subscribes a session to a topic with a CALL of $topic@1.Topic.Subscribe
// or Unsubscribe, one text argument. A proxy answers these calls for its
// clients; a gateway answers them for its direct clients.
const (
	topicModule      = protocol.TopicModule
	topicType        = protocol.TopicType
	topicSubscribe   = protocol.TopicSubscribe
	topicUnsubscribe = protocol.TopicUnsubscribe
)

// DefaultMaxSubscriptions is the default of Config.MaxSubscriptions.
const DefaultMaxSubscriptions = 1024

// subscriber is one session of one direct connection subscribed to a topic.
type subscriber struct {
	c       *conn
	session protocol.SessionID
}

// topics indexes the gateway's subscriptions both ways: by topic for
// Publish, by connection to drop them when it ends.
type topics struct {
	mu      sync.Mutex
	byTopic map[string]map[subscriber]struct{}
	byConn  map[*conn]map[topicSub]struct{}
	// bySession counts the subscriptions of each session: a session with
	// one cannot move (its subscriptions belong to a connection here).
	bySession map[protocol.SessionID]int
	n         int
}

// topicSub is one subscription of a connection.
type topicSub struct {
	topic   string
	session protocol.SessionID
}

func newTopics() *topics {
	return &topics{byTopic: map[string]map[subscriber]struct{}{}, byConn: map[*conn]map[topicSub]struct{}{},
		bySession: map[protocol.SessionID]int{}}
}

// subscribe adds a subscription; it fails when the connection holds max
// other subscriptions already.
func (t *topics) subscribe(c *conn, session protocol.SessionID, topic string, max int) *protocol.Error {
	t.mu.Lock()
	defer t.mu.Unlock()
	mine := t.byConn[c]
	key := topicSub{topic: topic, session: session}
	if _, ok := mine[key]; ok {
		return nil
	}
	if len(mine) >= max {
		return protocol.Errorf(protocol.CodeOverloaded, "more than %d topic subscriptions on this connection", max)
	}
	if mine == nil {
		mine = map[topicSub]struct{}{}
		t.byConn[c] = mine
	}
	mine[key] = struct{}{}
	subs := t.byTopic[topic]
	if subs == nil {
		subs = map[subscriber]struct{}{}
		t.byTopic[topic] = subs
	}
	subs[subscriber{c: c, session: session}] = struct{}{}
	t.bySession[session]++
	t.n++
	return nil
}

// hasSession reports whether session holds a subscription.
func (t *topics) hasSession(session protocol.SessionID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bySession[session] > 0
}

func (t *topics) unsubscribe(c *conn, session protocol.SessionID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(c, topicSub{topic: topic, session: session})
}

// dropConn removes every subscription of c.
func (t *topics) dropConn(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range t.byConn[c] {
		t.removeLocked(c, key)
	}
}

// removeLocked removes one subscription. Caller must hold t.mu.
func (t *topics) removeLocked(c *conn, key topicSub) {
	mine := t.byConn[c]
	if _, ok := mine[key]; !ok {
		return
	}
	delete(mine, key)
	if len(mine) == 0 {
		delete(t.byConn, c)
	}
	subs := t.byTopic[key.topic]
	delete(subs, subscriber{c: c, session: key.session})
	if len(subs) == 0 {
		delete(t.byTopic, key.topic)
	}
	if t.bySession[key.session]--; t.bySession[key.session] <= 0 {
		delete(t.bySession, key.session)
	}
	t.n--
}

func (t *topics) subscribers(topic string) []subscriber {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]subscriber, 0, len(t.byTopic[topic]))
	for s := range t.byTopic[topic] {
		out = append(out, s)
	}
	return out
}

func (t *topics) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// checkTopic checks a topic name: 1 to 255 bytes of UTF-8.
func checkTopic(topic string) error {
	if topic == "" || len(topic) > protocol.MaxStringLen || !utf8.ValidString(topic) {
		return errors.New("a topic must be 1 to 255 bytes of UTF-8")
	}
	return nil
}

// checkEventName checks a module's event name: 1 to 255 bytes, not
// beginning with '$' (reserved for the protocol, e.g. $session_lost).
func checkEventName(event string) error {
	switch {
	case event == "" || len(event) > protocol.MaxStringLen:
		return errors.New("gateway: event name must be 1 to 255 bytes")
	case strings.HasPrefix(event, "$"):
		return fmt.Errorf("gateway: event name %q: names beginning with '$' are reserved for the protocol", event)
	}
	return nil
}

var nullBody = []byte{0xf6}

// topicCall answers a CALL of $topic@1 on the reader goroutine: it only
// updates the subscription index.
func (c *conn) topicCall(f *protocol.Frame) {
	call := &Call{conn: c, id: f.CallID, flags: f.Flags, sessionHdr: f.Session, object: f.Object}
	if e := c.topicCallError(f); e != nil {
		c.refuse(call, f, e)
		return
	}
	if !f.Flags.Has(protocol.FlagOneway) {
		_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeResult, CallID: f.CallID, Session: f.Session, Body: nullBody})
	}
}

func (c *conn) topicCallError(f *protocol.Frame) *protocol.Error {
	method := string(f.Method)
	switch {
	case string(f.Module) != topicModule || string(f.TypeName) != topicType:
		return protocol.Errorf(protocol.CodeNotFound, "no module %q", f.Module)
	case method != topicSubscribe && method != topicUnsubscribe:
		return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no method %q", topicModule, topicType, method)
	case c.proxy:
		return protocol.Errorf(protocol.CodeNotFound, "%s is answered by the proxy that holds the client's connection; a gateway answers it only for direct clients", topicModule)
	case f.Object != 0:
		return protocol.Errorf(protocol.CodeBadArgs, "%s.%s.%s takes object id 0, got %d", topicModule, topicType, method, f.Object)
	}
	var args []protocol.RawValue
	var topic string
	if err := protocol.Unmarshal(f.Body, &args); err != nil || len(args) != 1 {
		return protocol.Errorf(protocol.CodeBadArgs, "%s.%s.%s takes one argument, the topic", topicModule, topicType, method)
	}
	if err := protocol.Unmarshal(args[0], &topic); err != nil {
		return protocol.Errorf(protocol.CodeBadArgs, "topic: want a text string: %v", err)
	}
	if err := checkTopic(topic); err != nil {
		return protocol.Errorf(protocol.CodeBadArgs, "%v", err)
	}
	session := f.Session
	if session.IsZero() {
		session = c.session
	}
	if method == topicUnsubscribe {
		c.g.topics.unsubscribe(c, session, topic)
		return nil
	}
	return c.g.topics.subscribe(c, session, topic, c.g.cfg.MaxSubscriptions)
}

// Publish sends the event named event, with value (CBOR-encoded) as its
// payload, to every session subscribed to topic (protocol/SPEC.md
// section 7): to each subscribed session of the gateway's direct clients,
// and, for the sessions that proxies hold, one topic EVENT per proxy
// instance connected to the gateway, which the proxy delivers to its
// subscribers. Delivery is best effort and at most once: a subscriber whose
// connection fails or falls behind misses events (a direct client that
// does not read is disconnected, as with Emit), and events of different
// publishers are not ordered. Publish may wait, up to the write timeout,
// for room on a proxy connection that is behind.
//
// Publish fails on an invalid topic (1 to 255 bytes of UTF-8) or event
// name (1 to 255 bytes, not beginning with '$'), a value that does not
// encode, a frame over Limits.MaxFrame, or a gateway that has stopped.
// Subscribers that are missed are not errors.
func (g *Gateway) Publish(topic, event string, value any) error {
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("gateway: publish: %w", err)
	}
	if err := checkEventName(event); err != nil {
		return err
	}
	body, err := protocol.Marshal(value)
	if err != nil {
		return fmt.Errorf("gateway: publish: payload: %w", err)
	}
	f := protocol.Frame{Type: protocol.TypeEvent, Module: []byte(topicModule), TypeName: []byte(topic), Method: []byte(event), Body: body}
	if f.Size() > g.cfg.Limits.MaxFrame {
		return protocol.Errorf(protocol.CodeTooLarge, "topic event of %d bytes exceeds max_frame %d", f.Size(), g.cfg.Limits.MaxFrame)
	}
	if g.State() == StateStopped || g.isClosing() {
		return ErrClosed
	}
	for _, s := range g.topics.subscribers(topic) {
		f.Session = s.session
		s.c.sendTopicEvent(&f)
	}
	f.Session = protocol.SessionID{}
	for _, group := range g.proxyConns() {
		for _, c := range group {
			if c.sendTopicEvent(&f) {
				break // once per instance; the next connection only if this one failed
			}
		}
	}
	return nil
}

// Publish is (*Gateway).Publish for module code: it publishes from the
// gateway running the call in ctx. It fails outside a call.
func Publish(ctx context.Context, topic, event string, value any) error {
	c := callFrom(ctx)
	if c == nil {
		return errors.New("gateway: Publish needs the context of a call")
	}
	return c.conn.g.Publish(topic, event, value)
}

// sendTopicEvent queues f and reports whether it was queued.
func (c *conn) sendTopicEvent(f *protocol.Frame) bool {
	if c.ending.Load() {
		return false
	}
	if f.Size() > c.peerMax {
		c.log.Warn().Int("size", f.Size()).Int("peer_max_frame", c.peerMax).Str("topic", string(f.TypeName)).
			Msg("topic event not sent: over the peer's max_frame")
		return false
	}
	if err := c.pc.Send(f); err != nil {
		c.log.Debug().Err(err).Str("topic", string(f.TypeName)).Msg("topic event not sent")
		return false
	}
	c.g.metrics.topicEvents.Add(1)
	return true
}

// proxyConns returns the welcomed proxy connections grouped by the
// instance their HELLO named, each group in connection order; a
// connection that named none is a group of its own.
func (g *Gateway) proxyConns() [][]*conn {
	g.mu.Lock()
	var cs []*conn
	for c := range g.conns {
		// proxy and instance are written before welcomed is set.
		if c.welcomed.Load() && c.proxy && !c.ending.Load() {
			cs = append(cs, c)
		}
	}
	g.mu.Unlock()
	slices.SortFunc(cs, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	var groups [][]*conn
	byInstance := map[string]int{}
	for _, c := range cs {
		if i, ok := byInstance[c.instance]; ok && c.instance != "" {
			groups[i] = append(groups[i], c)
			continue
		}
		byInstance[c.instance] = len(groups)
		groups = append(groups, []*conn{c})
	}
	return groups
}

func (g *Gateway) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}
