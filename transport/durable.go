package transport

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/graftlb/graftlb/protocol"
)

// ensureStream creates the stream of durable calls unless it exists: a
// work queue (a message is removed once acked), on file, with JetStream's
// duplicate window and message schedules.
func ensureStream(ctx context.Context, js jetstream.JetStream, subj Subjects, ttl, dedup time.Duration) error {
	cfg := jetstream.StreamConfig{
		Name:              subj.Stream(),
		Subjects:          subj.streamSubjects(),
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxAge:            ttl,
		Duplicates:        dedup,
		AllowRollup:       true, // message schedules need it
		AllowMsgSchedules: true,
	}
	if _, err := js.Stream(ctx, cfg.Name); err == nil {
		return nil
	}
	_, err := js.CreateStream(ctx, cfg)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("transport: create stream %s: %w", cfg.Name, err)
	}
	return nil
}

// Accepted is the RESULT body of a durable call once it is stored (a CBOR
// map; protocol/TRANSPORT.md, Durable calls).
type Accepted struct {
	Accepted  bool   `cbor:"accepted" json:"accepted"`
	ID        string `cbor:"id" json:"id"`               // its Nats-Msg-Id
	Seq       uint64 `cbor:"seq" json:"seq"`             // its stream sequence
	Duplicate bool   `cbor:"duplicate" json:"duplicate"` // an earlier submission is stored
}

// MessageID is a durable call's message id, by which JetStream drops
// duplicate submissions: the hex of the first 16 bytes of SHA-256 over the
// session id, the client's call id, the target strings and the arguments.
// A client sending the same call again (same session, call id, target and
// arguments) within the duplicate window submits it once.
func MessageID(f *protocol.Frame, clientID uint32) string {
	h := sha256.New()
	h.Write(f.Session[:])
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], clientID)
	h.Write(b[:])
	for _, s := range [][]byte{f.Module, f.TypeName, f.Method, f.Body} {
		binary.BigEndian.PutUint32(b[:], uint32(len(s)))
		h.Write(b[:])
		h.Write(s)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// durable stores c in the work queue (or, with a not-before time, as a
// schedule that the server fires then) and answers once it is stored.
func (t *NATS) durable(c *Call, reply func([]byte)) {
	var f protocol.Frame
	if err := protocol.Decode(c.Frame, &f); err != nil {
		reply(ErrorFrame(c, protocol.CodeBadFrame, "durable call does not decode"))
		return
	}
	now := time.Now()
	due := now
	if !c.NotBefore.IsZero() && c.NotBefore.After(now) {
		due = c.NotBefore
	}
	if due.Sub(now) > t.cfg.DurableTTL {
		reply(ErrorFrame(c, protocol.CodeBadArgs, fmt.Sprintf("not-before is more than the durable TTL (%s) away", t.cfg.DurableTTL)))
		return
	}
	// A durable call's deadline is how long it may wait to start once it
	// is due; the durable TTL bounds it.
	expires := due.Add(t.cfg.DurableTTL)
	if !c.Deadline.IsZero() {
		if e := due.Add(c.Deadline.Sub(now)); e.Before(expires) {
			expires = e
		}
	}
	id := MessageID(&f, c.ClientID)
	module := string(c.Module)
	subject := t.cfg.Subjects.Durable(module)
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id)}
	if due.After(now) {
		subject = t.cfg.Subjects.Schedule(module, id)
		// @at has whole seconds: round up, never fire early.
		at := due.Truncate(time.Second)
		if at.Before(due) {
			at = at.Add(time.Second)
		}
		opts = append(opts, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(t.cfg.Subjects.Durable(module)))
	}
	m := message(c, subject)
	m.Header.Set(HeaderDeadline, formatMillis(expires))
	if due.After(now) {
		m.Header.Set(HeaderNotBefore, formatMillis(due))
	}
	m.Data = append([]byte(nil), c.Frame...) // published after Call returns
	call := *c                               // c's slices are views of a buffer the caller reuses
	call.Frame, call.Module, call.Type, call.Method = nil, nil, nil, nil
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		reply(ErrorFrame(c, protocol.CodeUnavailable, "the proxy's NATS transport is closed"))
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		wait := 5 * time.Second
		if !call.Deadline.IsZero() {
			wait = min(wait, time.Until(call.Deadline))
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(wait, time.Millisecond))
		defer cancel()
		if err := t.ensureStream(ctx); err != nil {
			reply(ErrorFrame(&call, protocol.CodeUnavailable, "durable call not stored: "+err.Error()))
			return
		}
		ack, err := t.js.PublishMsg(ctx, m, opts...)
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			// The stream is gone (a server with a fresh store): the next
			// call creates it again.
			t.streamMu.Lock()
			t.streamReady = false
			t.streamMu.Unlock()
		}
		if err != nil {
			reply(ErrorFrame(&call, protocol.CodeUnavailable, "durable call not stored: "+err.Error()))
			return
		}
		if call.Flags.Has(protocol.FlagOneway) {
			reply(nil)
			return
		}
		body, _ := protocol.Marshal(Accepted{Accepted: true, ID: id, Seq: ack.Sequence, Duplicate: ack.Duplicate})
		reply(resultFrame(&call, body))
	}()
}
