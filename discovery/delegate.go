package discovery

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// delegate receives memberlist's callbacks. memberlist calls the event
// methods one at a time (never concurrently) while holding its node lock,
// so they only copy what they keep into members and publish, which never
// blocks; they never call back into memberlist.
type delegate struct {
	// Immutable after NewGossip.
	log      zerolog.Logger
	feed     *feed
	name     string        // the local node's name
	conflict chan struct{} // capacity 1; signals joinLoop of a conflict on name

	// meta is the encoded local member; NodeMeta reads it from any goroutine.
	meta atomic.Pointer[[]byte]

	// mu guards members, the live nodes by name.
	mu      sync.Mutex
	members map[string]Member
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	b := *d.meta.Load()
	if len(b) > limit { // cannot happen: EncodeMeta enforces MaxMetaSize
		d.log.Error().Int("size", len(b)).Int("limit", limit).Msg("discovery: local metadata over the limit; sending none")
		return nil
	}
	return b
}

// NotifyMsg implements memberlist.Delegate; graftlb sends no user messages.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate; graftlb sends no user messages.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; graftlb has no push/pull state.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate; graftlb has no push/pull state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.upsert(n, "joined") }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.upsert(n, "updated") }

// NotifyLeave implements memberlist.EventDelegate; memberlist calls it for
// a node that left and for one declared dead alike.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.members[n.Name]; !ok {
		return
	}
	delete(d.members, n.Name)
	d.log.Info().Str("member", n.Name).Str("gossip", n.Address()).Msg("discovery: member left or failed")
	d.publishLocked()
}

func (d *delegate) upsert(n *memberlist.Node, what string) {
	m, err := DecodeMeta(n.Meta) // copies what it keeps out of n.Meta
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.log.Warn().Err(err).Str("member", n.Name).Str("gossip", n.Address()).
			Msg("discovery: ignoring a member whose metadata does not decode")
		if _, ok := d.members[n.Name]; ok {
			delete(d.members, n.Name)
			d.publishLocked()
		}
		return
	}
	m.Name = n.Name
	m.Addrs.Gossip = n.Address()
	d.members[n.Name] = m
	d.log.Info().Str("member", m.Name).Stringer("role", m.Role).Stringer("state", m.State).
		Stringer("instance", m.Instance).Str("gossip", m.Addrs.Gossip).Msg("discovery: member " + what)
	d.publishLocked()
}

// NotifyConflict implements memberlist.ConflictDelegate. memberlist has
// already logged the conflict; when it is about this node's own name, the
// delegate wakes joinLoop without blocking.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != d.name {
		return
	}
	select {
	case d.conflict <- struct{}{}:
	default:
	}
}

// publishLocked publishes the current members. Caller must hold d.mu.
func (d *delegate) publishLocked() {
	ms := make([]Member, 0, len(d.members))
	for _, m := range d.members {
		ms = append(ms, m)
	}
	d.feed.publish(ms)
}
