package gateway

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/protocol"
)

// Session handoff (protocol/SPEC.md section 7, Handoff): a draining gateway
// that knows its pool moves each movable, quiet session it holds to the
// gateway that the session's preference list names next, the list every
// proxy computes. The receiver acknowledges the Adopt call before the
// sender forgets the session; proxies learn the move from a MOVED frame,
// and the calls that still arrive are relayed (from a proxy) or answered
// ERROR MOVED (a direct client).

// PeerInfo is one gateway of the pool, as the handoff sees it.
type PeerInfo struct {
	// Name is the gateway's member name (its --name): proxies key their
	// preference lists on it.
	Name string
	// TCP and WS are the addresses (host:port) of its TCP and WebSocket
	// listeners; WS may be empty.
	TCP, WS string
	// TLS says those listeners speak TLS (discovery.Addrs.TLS).
	TLS bool
	// Modules lists the module@version names it hosts; empty means every
	// module.
	Modules []string
	// Weight is its weight in the pool (as gossiped); 0 means 1.
	Weight int
	// Draining says it refuses new sessions.
	Draining bool
}

// serves reports whether p hosts every module of mods.
func (p *PeerInfo) serves(mods []string) bool {
	if len(p.Modules) == 0 {
		return true
	}
	for _, m := range mods {
		if !slices.Contains(p.Modules, m) {
			return false
		}
	}
	return true
}

// SetPool tells the gateway how to learn its pool: pool returns every
// gateway member, this one included, as a gossip snapshot has them.
// discovery.JoinGateway sets it; nil (the default) means no pool, and then
// a drain moves nothing (see Drain). pool must be fast and safe for
// concurrent use.
func (g *Gateway) SetPool(pool func() []PeerInfo) {
	if pool == nil {
		g.pool.Store(nil)
		return
	}
	g.pool.Store(&pool)
}

// Handoff limits.
const (
	// maxTargets is how many gateways of a session's list a move tries.
	maxTargets = 3
	// moveWorkers is how many sessions move at once.
	moveWorkers = 8
	// adoptTimeout bounds one Adopt call, dialing included.
	adoptTimeout = 5 * time.Second
	// retryAfter is how long a session whose move failed stays put before
	// the next try (times the number of failures, up to 8).
	retryAfter = 250 * time.Millisecond
)

// poolView is the pool at one moment: the peers and the Maglev table over
// them, the same table a proxy builds from the same members.
type poolView struct {
	key   string // names and weights the table was built from
	peers map[string]PeerInfo
	table *affinity.Table
}

// view returns the current pool, reusing the table while names and weights
// are unchanged (building one takes about a millisecond). nil without a
// pool.
func (g *Gateway) view() *poolView {
	pf := g.pool.Load()
	if pf == nil {
		return nil
	}
	peers := (*pf)()
	slices.SortFunc(peers, func(a, b PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	peers = slices.CompactFunc(peers, func(a, b PeerInfo) bool { return a.Name == b.Name })
	var key strings.Builder
	v := &poolView{peers: make(map[string]PeerInfo, len(peers))}
	ms := make([]affinity.Member, 0, len(peers))
	for _, p := range peers {
		if p.Name == "" {
			continue
		}
		w := max(p.Weight, 1)
		v.peers[p.Name] = p
		ms = append(ms, affinity.Member{Name: p.Name, Weight: w})
		key.WriteString(p.Name + ":" + strconv.Itoa(w) + ",")
	}
	v.key = key.String()
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	if g.lastView != nil && g.lastView.key == v.key {
		v.table = g.lastView.table
	} else {
		t, err := affinity.NewTable(ms)
		if err != nil {
			g.log.Warn().Err(err).Msg("handoff: cannot build the pool's table")
			return nil
		}
		v.table = t
	}
	g.lastView = v
	return v
}

// targets returns the gateways a session with objects of mods may move to,
// in the order of its preference list: ready, serving every module, not
// this gateway; at most maxTargets.
func (v *poolView) targets(self string, id protocol.SessionID, mods []string) []PeerInfo {
	var out []PeerInfo
	for _, i := range v.table.Preference(affinity.HashSession(id), nil) {
		p, ok := v.peers[v.table.Name(i)]
		if !ok || p.Name == self || p.Draining || p.TCP == "" || !p.serves(mods) {
			continue
		}
		out = append(out, p)
		if len(out) == maxTargets {
			break
		}
	}
	return out
}

// modules returns the module@version names of s's objects.
func (s *session) modules() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var mods []string
	for _, o := range s.objects {
		if !slices.Contains(mods, o.typ.module) {
			mods = append(mods, o.typ.module)
		}
	}
	return mods
}

// moveAll makes one pass over the sessions: each that can move now (quiet,
// every object movable, no topic subscription of a direct client, not
// waiting after a failed move) moves, moveWorkers at a time. It returns
// when the pass is over.
func (g *Gateway) moveAll(ctx context.Context, v *poolView, retry map[protocol.SessionID]time.Time) {
	now := g.cfg.Clock.Now()
	var todo []*session
	for _, s := range g.sessions.list() {
		if t, ok := retry[s.id]; ok && now.Before(t) {
			continue
		}
		if g.topics.hasSession(s.id) {
			continue
		}
		todo = append(todo, s)
	}
	if len(todo) == 0 {
		return
	}
	var mu sync.Mutex // guards retry
	var wg sync.WaitGroup
	next := make(chan *session)
	for range min(moveWorkers, len(todo)) {
		wg.Go(func() {
			for s := range next {
				if failed := g.move(ctx, v, s); failed > 0 {
					mu.Lock()
					retry[s.id] = g.cfg.Clock.Now().Add(retryAfter * time.Duration(min(failed, 8)))
					mu.Unlock()
				}
			}
		})
	}
	for _, s := range todo {
		next <- s
	}
	close(next)
	wg.Wait()
}

// move moves s to the first target of its list that adopts it. It returns
// 0 when s moved or could not start moving (busy, not movable), else the
// number of failures so far.
func (g *Gateway) move(ctx context.Context, v *poolView, s *session) int {
	if !g.sessions.beginMove(s) {
		return 0
	}
	var to *PeerInfo
	defer func() { g.sessions.endMove(s, to) }()
	body, err := s.snapshot()
	if err != nil {
		g.log.Warn().Err(err).Str("session", s.id.String()).Msg("handoff: session cannot move")
		return g.moveFailed(s)
	}
	args, err := protocol.Marshal([]adoptBody{body})
	if err != nil {
		g.log.Warn().Err(err).Str("session", s.id.String()).Msg("handoff: encoding the session")
		return g.moveFailed(s)
	}
	targets := v.targets(g.cfg.Name, s.id, s.modules())
	if len(targets) == 0 {
		g.log.Debug().Str("session", s.id.String()).Msg("handoff: no gateway of the pool can take the session")
		return g.moveFailed(s)
	}
	for _, t := range targets {
		actx, cancel := context.WithTimeout(ctx, adoptTimeout)
		err := g.adoptAt(actx, &t, s.id, args)
		cancel()
		if err == nil {
			to = &t
			break
		}
		g.log.Info().Err(err).Str("session", s.id.String()).Str("to", t.Name).Msg("handoff: adopt refused or failed")
	}
	if to == nil {
		return g.moveFailed(s)
	}
	g.movedOut(s.id, to)
	return 0
}

// moveFailed counts a failed move of s and returns its failures so far.
func (g *Gateway) moveFailed(s *session) int {
	g.handoffMu.Lock()
	defer g.handoffMu.Unlock()
	g.moveFailures[s.id]++
	return g.moveFailures[s.id]
}

// adoptAt sends the Adopt call for session id to t and waits for its
// acknowledgement.
func (g *Gateway) adoptAt(ctx context.Context, t *PeerInfo, id protocol.SessionID, args []byte) error {
	l, err := g.link(ctx, t)
	if err != nil {
		return err
	}
	f := protocol.Frame{Type: protocol.TypeCall, Session: id, Module: []byte(protocol.HandoffModule),
		TypeName: []byte(protocol.HandoffType), Method: []byte(protocol.HandoffAdopt), Body: args}
	if f.Size() > l.maxFrame {
		return protocol.Errorf(protocol.CodeTooLarge, "session of %d bytes exceeds %s's max_frame %d", f.Size(), t.Name, l.maxFrame)
	}
	r, err := l.call(ctx, &f)
	if err != nil {
		return err
	}
	if r.Type == protocol.TypeError {
		return protocol.ErrorFromBody(r.Body)
	}
	return nil
}

// movedOut records that t adopted session id and tells every proxy.
func (g *Gateway) movedOut(id protocol.SessionID, t *PeerInfo) {
	g.handoffMu.Lock()
	g.movedTo[t.Name]++
	delete(g.moveFailures, id)
	g.handoffMu.Unlock()
	g.sessionsMoved.Add(1)
	g.lastActivity.Store(g.cfg.Clock.Now().UnixNano()) // calls sent before MOVED may still come
	g.log.Debug().Str("session", id.String()).Str("to", t.Name).Msg("handoff: session moved")
	for _, c := range g.snapshotConns() {
		switch {
		case c.proxy && !c.handoff && c.welcomed.Load():
			c.sendMoved(id, t)
		case !c.proxy && c.welcomed.Load() && c.session == id:
			// A direct client whose connection's session moved: told at
			// once, with where to (the ERROR MOVED body), so that it
			// follows before this gateway exits.
			e := c.movedError(t)
			_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeMoved, Session: id, Module: []byte(t.Name),
				Body: protocol.AppendErrorBody(nil, e.Code, e.Message, e.Type)})
		}
	}
}

// sendMoved tells a proxy connection that session id is on t now.
func (c *conn) sendMoved(id protocol.SessionID, t *PeerInfo) {
	_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeMoved, Session: id, Module: []byte(t.Name)})
}

// movedError is the ERROR MOVED a direct client gets for a session that
// moved to t: the exception type is t's address in the client's binding.
func (c *conn) movedError(t *PeerInfo) *protocol.Error {
	scheme, addr, path := "tcp://", t.TCP, ""
	if c.binding == "ws" && t.WS != "" {
		scheme, addr, path = "ws://", t.WS, protocol.WSPath
	}
	if t.TLS {
		scheme = map[string]string{"tcp://": "tls://", "ws://": "wss://"}[scheme]
	}
	url := scheme + addr + path
	return &protocol.Error{Code: protocol.CodeMoved, Message: "session moved to gateway " + t.Name, Type: url}
}
