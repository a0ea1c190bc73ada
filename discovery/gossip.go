package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// Gossip is a member of the graftlb memberlist cluster and a Source of its
// snapshots. Every node, gateway or proxy, runs one: NewGossip, Start,
// then at exit Leave and Shutdown.
//
// Its snapshots include the local node and every live node whose metadata
// decodes; a node that leaves or is declared dead drops out. Methods are
// safe for concurrent use.
type Gossip struct {
	// Immutable after NewGossip.
	cfg  Config
	adv  advertisement
	key  []byte
	log  zerolog.Logger
	feed *feed
	del  *delegate
	stop chan struct{} // closed to stop joinLoop

	// mu guards the fields below and is held across calls into memberlist
	// that change its lifecycle (Start, UpdateNode, Leave, Shutdown). The
	// delegate never takes it, so memberlist calling back cannot deadlock.
	mu       sync.Mutex
	local    Member // Name, Instance and Addrs.Gossip (after Start) set
	ml       *memberlist.Memberlist
	phase    phase
	joinDone chan struct{} // closed when joinLoop returns; nil before Start

	// seedMu guards seeds, cfg.Join as SetJoin last changed it. joinLoop
	// takes it (never g.mu) to read them.
	seedMu sync.Mutex
	seeds  []string
}

type phase int

const (
	phaseNew phase = iota
	phaseStarted
	phaseLeft
	phaseShutdown
)

var _ Source = (*Gossip)(nil)

// NewGossip validates cfg and prepares a member; it binds nothing until
// Start. A zero cfg.Local.Instance is replaced by a random id.
func NewGossip(cfg Config) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Join = append([]string(nil), cfg.Join...)
	key, _ := ParseKey(cfg.Key)
	adv, err := cfg.advertise()
	if err != nil {
		return nil, err
	}
	local := adv.member(cfg.Local.normalized())
	local.Addrs.Gossip = ""
	for local.Instance == 0 {
		local.Instance = InstanceID(rand.Uint64())
	}
	meta, err := EncodeMeta(local)
	if err != nil {
		return nil, err
	}
	log := orNop(cfg.Logger).With().Str("component", "discovery").Str("node", local.Name).Logger()
	g := &Gossip{
		cfg:   cfg,
		adv:   adv,
		key:   key,
		log:   log,
		feed:  newFeed(),
		stop:  make(chan struct{}),
		local: local,
		seeds: cfg.Join,
	}
	g.del = &delegate{log: log, feed: g.feed, name: local.Name, conflict: make(chan struct{}, 1), members: map[string]Member{}}
	g.del.meta.Store(&meta)
	return g, nil
}

// Start binds the gossip listener, starts memberlist and contacts the seeds
// of cfg.Join once, synchronously. If no seed answers, Start still succeeds:
// it logs a warning and a goroutine retries every JoinRetry, since seeds
// often start after their members. After the first successful join the
// goroutine joins the seeds once more after RejoinAfter, which repairs the
// rare member that missed a peer during a mass start (see the package doc) long
// before the next push/pull, then one seed every RejoinInterval, which
// brings a member that was declared dead back within seconds of the
// network healing. The same goroutine re-joins while the cluster
// still holds a previous run of this node under its name at another
// address, so that a restarted node is accepted as soon as its old run is
// declared dead.
func (g *Gossip) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase != phaseNew {
		return errors.New("discovery: Start called twice")
	}
	mc := g.cfg.memberlistConfig(g.adv, g.key, g.del, orNop(g.cfg.Logger))
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("discovery: start gossip on %s: %w", g.cfg.BindAddr, err)
	}
	g.ml = ml
	g.phase = phaseStarted
	g.local.Addrs.Gossip = ml.LocalNode().Address()
	if g.key == nil {
		g.log.Warn().Msg("discovery: gossip is not encrypted; set a gossip key (" + KeyEnv + ")")
	}
	g.log.Info().Str("gossip", g.local.Addrs.Gossip).Str("label", g.cfg.Label).
		Stringer("instance", g.local.Instance).Stringer("role", g.local.Role).
		Bool("encrypted", g.key != nil).Msg("discovery: gossip started")
	joined := len(g.cfg.Join) > 0 && g.joinSeeds(ml, "join") > 0 // the seeds of NewGossip: SetJoin needs Start first
	g.joinDone = make(chan struct{})
	go g.joinLoop(ml, g.local.Addrs.Gossip, joined)
	return nil
}

// conflictWindow is how long joinLoop keeps re-joining after memberlist
// last reported a conflict on this node's name. The conflict stops being
// reported as soon as the old run is suspected (this node then refutes
// instead), long before it is declared dead and the name can be reclaimed;
// 60 s covers the 6–10 s of failure detection with a wide margin.
const conflictWindow = 60 * time.Second

// joinLoop owns every join after Start's first, until Leave or Shutdown:
//
//   - while no seed has answered, it retries them every JoinRetry;
//   - after the first successful join, it joins them once more after
//     RejoinAfter;
//   - from then on, every RejoinInterval, it joins one address of a seed
//     (drawn at random among the seeds' resolved addresses, this node's
//     own excluded; when it does not answer, a member this node knows).
//     A member the others declared dead (a partition, a
//     long pause) learns it from that exchange and refutes, and the
//     members it declared dead refute too, so the cluster is whole again
//     within about RejoinInterval of the network healing; memberlist alone
//     gossips to the dead only briefly and pushes/pulls only with live
//     members, which took about 30 s;
//   - when memberlist reports that another address holds this node's name
//     (the previous run of a node restarted on a new port or IP, not yet
//     declared dead), it pushes this node's state to the seeds and to
//     every member it knows (the seeds may be gone) every JoinRetry for
//     conflictWindow. The others refuse the new address
//     until the old run is declared dead, and memberlist alone would only
//     offer it again at the next push/pull, up to 30 s later; this way the
//     new run is accepted within JoinRetry of DeadNodeReclaimTime.
//
// It never takes g.mu, which Leave and Shutdown hold while they wait for it.
func (g *Gossip) joinLoop(ml *memberlist.Memberlist, self string, joined bool) {
	defer close(g.joinDone)
	t := g.cfg.Clock.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var deadline time.Time // when t fires; zero: not armed
	// arm makes t fire after d, or keeps it armed if it fires sooner.
	arm := func(d time.Duration) {
		at := g.cfg.Clock.Now().Add(d)
		if !deadline.IsZero() && !at.Before(deadline) {
			return
		}
		if !t.Stop() {
			select {
			case <-t.C():
			default:
			}
		}
		t.Reset(d)
		deadline = at
	}
	hasSeeds := len(g.cfg.Join) > 0
	rejoinDue := hasSeeds && g.cfg.RejoinAfter >= 0
	periodic := hasSeeds && g.cfg.RejoinInterval > 0
	// afterJoin arms what follows a successful join.
	afterJoin := func() {
		switch {
		case rejoinDue:
			arm(g.cfg.RejoinAfter)
		case periodic:
			arm(g.cfg.RejoinInterval)
		}
	}
	if hasSeeds && !joined {
		arm(g.cfg.JoinRetry)
	} else {
		afterJoin()
	}
	var conflictUntil time.Time // zero: no conflict on our name
	for {
		select {
		case <-g.stop:
			return
		case <-g.del.conflict:
			if conflictUntil.IsZero() {
				g.log.Warn().Msg("discovery: another address holds this node's name, probably its previous run; " +
					"re-joining until the cluster declares it dead and accepts this one")
			}
			conflictUntil = g.cfg.Clock.Now().Add(conflictWindow)
			arm(g.cfg.JoinRetry)
			continue
		case <-t.C():
			deadline = time.Time{}
		}
		now := g.cfg.Clock.Now()
		switch {
		case hasSeeds && !joined:
			if g.joinSeeds(ml, "join retry") == 0 {
				arm(g.cfg.JoinRetry)
				continue
			}
			joined = true
			afterJoin()
		case !conflictUntil.IsZero():
			g.joinPeers(ml, self)
			if now.Before(conflictUntil) {
				arm(g.cfg.JoinRetry)
			} else {
				conflictUntil = time.Time{}
			}
			afterJoin()
		case rejoinDue:
			rejoinDue = false
			g.joinSeeds(ml, "rejoin")
			afterJoin()
		case periodic:
			g.joinOneSeed(ml, self)
			afterJoin()
		}
	}
}

// joinOneSeed joins one address of the seeds, drawn at random among those
// the seeds resolve to, this node's own excluded. A seed that does not
// answer is only logged at debug level, and one of the members this node
// knows is joined instead: seeds die too, and a node whose every seed is
// gone must still reconcile with the others after a partition.
func (g *Gossip) joinOneSeed(ml *memberlist.Memberlist, self string) {
	addrs := resolveSeeds(g.Seeds(), self)
	if len(addrs) == 0 {
		return
	}
	target := addrs[rand.IntN(len(addrs))]
	_, err := ml.Join([]string{target})
	if err == nil {
		return
	}
	g.log.Debug().Str("error", flatten(err)).Str("seed", target).Msg("discovery: periodic re-join: the seed did not answer")
	if peers := g.peers(self); len(peers) > 0 {
		_, _ = ml.Join([]string{peers[rand.IntN(len(peers))]})
	}
}

// peers returns the gossip addresses of the members this node knows, its
// own excluded.
func (g *Gossip) peers(self string) []string {
	var out []string
	for _, m := range g.feed.snapshot().Members() {
		if a := m.Addrs.Gossip; a != "" && a != self && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// resolveSeeds returns the IP:PORT addresses the seeds (host:port, names
// allowed) stand for now, except self. A seed that does not resolve is
// skipped.
func resolveSeeds(seeds []string, self string) []string {
	var out []string
	for _, s := range seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			continue
		}
		var ips []net.IP
		if ip := net.ParseIP(host); ip != nil {
			ips = []net.IP{ip}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
			ips, _ = net.DefaultResolver.LookupIP(ctx, "ip", host)
			cancel()
		}
		for _, ip := range ips {
			if a := net.JoinHostPort(ip.String(), port); a != self && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// joinPeers pushes this node's state to the seeds and to every member it
// knows, to settle a name conflict: the seeds alone may all be gone (a
// seed that died after this node joined through it), and the members that
// refuse this run are the ones that must hear from it.
func (g *Gossip) joinPeers(ml *memberlist.Memberlist, self string) {
	targets := resolveSeeds(g.Seeds(), self)
	for _, a := range g.peers(self) {
		if !slices.Contains(targets, a) {
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		return
	}
	if n, err := ml.Join(targets); n == 0 {
		g.log.Warn().Str("error", flatten(err)).Strs("peers", targets).Msg("discovery: re-join after a name conflict failed")
	} else {
		g.log.Debug().Int("contacted", n).Strs("peers", targets).Msg("discovery: re-joined after a name conflict")
	}
}

// joinSeeds joins cfg.Join, logs the outcome and returns how many seeds
// answered.
func (g *Gossip) joinSeeds(ml *memberlist.Memberlist, what string) int {
	start := time.Now()
	seeds := g.Seeds()
	n, err := ml.Join(seeds)
	if n == 0 {
		ev := g.log.Warn().Str("error", flatten(err)).Strs("seeds", seeds).Str("attempt", what)
		if hint := joinFailureHint(err); hint != "" {
			ev = ev.Str("hint", hint)
		}
		ev.Msg("discovery: no gossip seed answered")
		return 0
	}
	g.log.Debug().Int("contacted", n).Strs("seeds", seeds).Str("attempt", what).
		Dur("took", time.Since(start)).Msg("discovery: joined gossip seeds")
	return n
}

// Seeds returns the gossip seeds, as NewGossip's cfg.Join or the last
// SetJoin gave them.
func (g *Gossip) Seeds() []string {
	g.seedMu.Lock()
	defer g.seedMu.Unlock()
	return g.seeds
}

// SetJoin replaces the seeds, for a reload: the re-joins from now on use
// them, and a started node joins them at once. A node that began with no
// seeds has no periodic re-join to use them for until it restarts; it
// joins them once here. Invalid seeds change nothing.
func (g *Gossip) SetJoin(seeds []string) error {
	for _, a := range seeds {
		if err := checkAddr(a, false); err != nil {
			return fmt.Errorf("discovery: join %q: %w", a, err)
		}
	}
	seeds = slices.Clone(seeds)
	g.seedMu.Lock()
	same := slices.Equal(seeds, g.seeds)
	g.seeds = seeds
	g.seedMu.Unlock()
	if same || len(seeds) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == phaseStarted {
		g.joinSeeds(g.ml, "reload")
	}
	return nil
}

// joinFailureHint explains a join error that points at a configuration
// mismatch rather than a seed that is down.
func joinFailureHint(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	switch {
	case refusalReason(s) != "":
		return "the seeds refuse this node: " + refusalReason(s) + "; check the gossip key"
	case strings.Contains(s, "EOF") || strings.Contains(s, "connection reset"):
		return "the seed closed the connection: a different cluster label or gossip key is likely"
	}
	return ""
}

// Join contacts addrs (host:port) now and returns how many answered; it
// fails if none did. Start already handles the configured seeds; Join is
// for members learnt later.
func (g *Gossip) Join(addrs ...string) (int, error) {
	g.mu.Lock()
	ml, ph := g.ml, g.phase
	g.mu.Unlock()
	if ph != phaseStarted {
		return 0, errors.New("discovery: Join needs a started member that has not left")
	}
	n, err := ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("discovery: join %v: %s", addrs, flatten(err))
	}
	return n, nil
}

// flatten renders memberlist's multi-errors (one per seed, as a bulleted
// multi-line text) on one line.
func flatten(err error) string {
	if err == nil {
		return ""
	}
	if me, ok := err.(interface{ WrappedErrors() []error }); ok {
		parts := make([]string, 0, len(me.WrappedErrors()))
		for _, e := range me.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// SetState changes the local member's state (for example to StateDraining)
// and gossips the new metadata. It waits up to BroadcastTimeout for the
// update to be sent to another member; on timeout it returns an error, but
// the new state stays set and reaches the others by gossip anyway. Before
// Start it only records the state.
func (g *Gossip) SetState(s State) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == phaseLeft || g.phase == phaseShutdown {
		return fmt.Errorf("discovery: set state %s: member has left or shut down", s)
	}
	next := g.local
	next.State = s
	meta, err := EncodeMeta(next)
	if err != nil {
		return fmt.Errorf("discovery: set state %s: %w", s, err)
	}
	g.local = next
	g.del.meta.Store(&meta)
	if g.phase == phaseNew {
		return nil
	}
	if err := g.ml.UpdateNode(g.cfg.BroadcastTimeout); err != nil {
		return fmt.Errorf("discovery: set state %s: %w", s, err)
	}
	g.log.Info().Stringer("state", s).Msg("discovery: local state gossiped")
	return nil
}

// Leave announces that this member leaves the cluster and waits up to
// timeout for the announcement to reach another member. The others drop
// it from their snapshots at once rather than after failure detection.
// Call Shutdown afterwards. Leaving twice is a no-op.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.phase {
	case phaseNew:
		return errors.New("discovery: Leave before Start")
	case phaseLeft:
		return nil
	case phaseShutdown:
		return errors.New("discovery: Leave after Shutdown")
	}
	g.stopJoinLoopLocked()
	g.phase = phaseLeft
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("discovery: leave: %w", err)
	}
	g.log.Info().Msg("discovery: left the gossip cluster")
	return nil
}

// Shutdown stops the member without announcing it (others see it fail;
// call Leave first for a clean exit), waits for its goroutine and closes
// Updates. A join in progress is waited for (at most memberlist's
// TCPTimeout, 10 s, against a seed that does not answer). Some of
// memberlist's own goroutines end up to a probe interval later. It is safe
// to call more than once.
func (g *Gossip) Shutdown() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.phase == phaseShutdown {
		return nil
	}
	g.stopJoinLoopLocked()
	var err error
	if g.ml != nil {
		if e := g.ml.Shutdown(); e != nil {
			err = fmt.Errorf("discovery: shutdown: %w", e)
		}
	}
	g.phase = phaseShutdown
	g.feed.close()
	return err
}

// stopJoinLoopLocked stops joinLoop and waits for it. Caller must hold g.mu.
func (g *Gossip) stopJoinLoopLocked() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	if g.joinDone != nil {
		<-g.joinDone
	}
}

// Close is Shutdown; it makes Gossip a Source.
func (g *Gossip) Close() error { return g.Shutdown() }

// LocalAddr returns the gossip address other members reach this one at,
// IP:PORT with the port actually bound; "" before Start.
func (g *Gossip) LocalAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.local.Addrs.Gossip
}

// Local returns the local member as it is gossiped.
func (g *Gossip) Local() Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.local
}

// Members returns the members of the newest snapshot, sorted by name. The
// slice must not be modified.
func (g *Gossip) Members() []Member { return g.feed.snapshot().Members() }

// Updates implements Source.
func (g *Gossip) Updates() <-chan Snapshot { return g.feed.ch }

// Snapshot implements Source.
func (g *Gossip) Snapshot() Snapshot { return g.feed.snapshot() }
