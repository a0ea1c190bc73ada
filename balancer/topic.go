package balancer

import (
	"sync"
	"unicode/utf8"

	"github.com/graftlb/graftlb/protocol"
)

// A proxy terminates topic subscriptions itself (SPEC.md section 7): a
// client's CALL of $topic@1.Topic.Subscribe is answered here, never
// forwarded, and a gateway's topic EVENT (zero session id, module
// $topic@1) is delivered to every subscribed session of this proxy's
// clients. Each gateway sends a topic EVENT once per proxy, so a session
// hears a topic's events whichever gateway published them and whichever
// proxy its connection goes through. Delivery is best effort, as for
// every event: a client that does not read is cut off.

// maxTopicLen is the longest topic name, in bytes.
const maxTopicLen = 255

// subscriber is one session of one client connection subscribed to a
// topic.
type subscriber struct {
	d   *downstream
	id  protocol.SessionID
	cid protocol.SessionID // the id its client names it by (session.cid)
}

// topicTable maps topics to their subscribers. Entries leave with their
// connection (downstream.close), so it holds only open connections.
type topicTable struct {
	mu sync.RWMutex
	m  map[string]map[subscriber]struct{}
}

// topicKey is one subscription of a connection.
type topicKey struct {
	topic string
	id    protocol.SessionID
}

func (t *topicTable) add(topic string, sub subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]map[subscriber]struct{})
	}
	subs := t.m[topic]
	if subs == nil {
		subs = make(map[subscriber]struct{})
		t.m[topic] = subs
	}
	subs[sub] = struct{}{}
}

func (t *topicTable) remove(topic string, sub subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	subs := t.m[topic]
	delete(subs, sub)
	if len(subs) == 0 {
		delete(t.m, topic)
	}
}

// publish delivers a topic EVENT (raw, patched in place with each
// subscriber's session id) to the subscribers that accept its size, and
// returns how many sessions it reached.
func (t *topicTable) publish(topic []byte, raw []byte) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	subs := t.m[string(topic)]
	n := 0
	for sub := range subs {
		if len(raw) > sub.d.peerMax {
			continue // larger than this client accepts
		}
		protocol.SetSession(raw, sub.cid)
		sub.d.write(nil, raw)
		n++
	}
	return n
}

// reservedCall answers a client's CALL of a reserved module ('$'): the
// proxy answers $topic@1 itself; the others ($handoff@1 is between
// gateways) are NOT_FOUND, never forwarded.
// cx is the session id as the client sent it (auth.go), which the answer
// carries.
func (d *downstream) reservedCall(f *protocol.Frame, cx protocol.SessionID) {
	var e *protocol.Error
	if string(f.Module) == protocol.TopicModule {
		e = d.subscription(f, cx)
	} else {
		e = protocol.Errorf(protocol.CodeNotFound, "module %q is reserved", f.Module)
	}
	if f.Flags.Has(protocol.FlagOneway) {
		return
	}
	if e != nil {
		d.sendError(f.CallID, e.Code, e.Message)
		return
	}
	_ = d.pc.Send(&protocol.Frame{Type: protocol.TypeResult, CallID: f.CallID, Session: cx, Body: cborNull})
}

var cborNull = []byte{0xf6}

// subscription applies a Subscribe or Unsubscribe call; cx is the session
// id as the client sent it.
func (d *downstream) subscription(f *protocol.Frame, cx protocol.SessionID) *protocol.Error {
	if string(f.TypeName) != protocol.TopicType {
		return protocol.Errorf(protocol.CodeNotFound, "%s has no type %q", protocol.TopicModule, f.TypeName)
	}
	method := string(f.Method)
	if method != protocol.TopicSubscribe && method != protocol.TopicUnsubscribe {
		return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no method %q", protocol.TopicModule, protocol.TopicType, method)
	}
	var args []string
	if err := protocol.Unmarshal(f.Body, &args); err != nil || len(args) != 1 {
		return protocol.Errorf(protocol.CodeBadArgs, "%s takes one argument, the topic (a text string)", method)
	}
	topic := args[0]
	if len(topic) == 0 || len(topic) > maxTopicLen || !utf8.ValidString(topic) {
		return protocol.Errorf(protocol.CodeBadArgs, "a topic is 1 to %d bytes of UTF-8", maxTopicLen)
	}
	id, cid := f.Session, cx
	if id.IsZero() {
		id, cid = d.sess.id, d.sess.cid
	}
	key, sub := topicKey{topic, id}, subscriber{d, id, cid}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return protocol.Errorf(protocol.CodeUnavailable, "connection closing")
	}
	_, had := d.subs[key]
	switch {
	case method == protocol.TopicUnsubscribe:
		if had {
			delete(d.subs, key)
			d.p.topics.remove(topic, sub)
		}
	case had:
	case len(d.subs) >= d.p.conf().MaxSubscriptions:
		return protocol.Errorf(protocol.CodeOverloaded, "more than %d topic subscriptions on this connection", d.p.conf().MaxSubscriptions)
	default:
		if d.subs == nil {
			d.subs = make(map[topicKey]protocol.SessionID)
		}
		d.subs[key] = cid
		d.p.topics.add(topic, sub)
	}
	return nil
}

// unsubscribe ends the subscriptions of session id on this connection (all
// of them when id is zero: the connection closes).
func (d *downstream) unsubscribe(id protocol.SessionID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, cid := range d.subs {
		if id.IsZero() || key.id == id {
			delete(d.subs, key)
			d.p.topics.remove(key.topic, subscriber{d, key.id, cid})
		}
	}
}
