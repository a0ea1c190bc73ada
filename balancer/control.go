package balancer

import (
	"cmp"
	"slices"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// control is the one goroutine that changes the pool: it applies discovery
// snapshots, rebuilds the picker when a gateway's state changes, and runs
// the periodic sweeps (deadlines, idle sessions).
func (p *Proxy) control() {
	defer p.wg.Done()
	sweep := p.cfg.Clock.NewTicker(p.cfg.SweepInterval)
	defer sweep.Stop()
	lastIdle := p.now()
	applied := false
	p.ctl.Run(p.src, p.stop, discovery.Handlers{
		Apply: func(snap discovery.Snapshot) {
			p.apply(snap)
			applied = true
			p.warmIfDialed(applied)
		},
		Rebuild: func() {
			p.rebuild()
			p.warmIfDialed(applied)
		},
		Tick: sweep.C(),
		Sweep: func() {
			now := p.now()
			p.expireDeadlines(now)
			if now-lastIdle > int64(time.Second) {
				lastIdle = now
				if n := p.sessions.expire(now - int64(p.conf().SessionIdle)); n > 0 {
					p.cfg.Logger.Debug().Int("sessions", n).Msg("forgot idle sessions")
				}
			}
		},
	})
}

// apply reconciles the backends with a membership snapshot.
func (p *Proxy) apply(snap discovery.Snapshot) {
	want := map[string]discovery.Member{}
	for _, m := range snap.Gateways() {
		if m.Addrs.TCP == "" {
			continue // nothing the proxy can dial
		}
		want[m.Name] = m
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	var gone []*backend
	for name, b := range p.backends {
		m, ok := want[name]
		if ok && m.Instance == b.member.Instance && m.Addrs.TCP == b.addr && m.Addrs.TLS == b.tls {
			b.update(m)
			continue
		}
		gone = append(gone, b)
		delete(p.backends, name)
	}
	var added []*backend
	for name, m := range want {
		if _, ok := p.backends[name]; !ok {
			b := newBackend(p, m)
			p.backends[name] = b
			added = append(added, b)
		}
	}
	p.mu.Unlock()
	gone = p.awaitLeave(gone, leaveLinger)
	for _, b := range gone {
		p.cfg.Logger.Info().Str("gateway", b.name).Msg("gateway left the pool")
		p.removeHealth(b)
		b.close()
		p.loseAllOn(b, anyEpoch, "gateway "+b.name+" that held the session left the pool")
	}
	for _, b := range added {
		p.cfg.Logger.Info().Str("gateway", b.name).Str("addr", b.addr).Strs("modules", b.member.Modules).Msg("gateway joined the pool")
		p.addHealth(b)
		b.start()
	}
	p.rebuild()
}

// warmIfDialed closes p.warm once the first snapshot is applied and every
// gateway in it had its first connection attempt, after the picker was
// rebuilt with what those attempts found.
func (p *Proxy) warmIfDialed(applied bool) {
	select {
	case <-p.warm:
		return
	default:
	}
	if !applied {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.backends {
		select {
		case <-b.dialed:
		default:
			return
		}
	}
	close(p.warm)
}

// rebuild publishes a new picker from the backends' current state.
func (p *Proxy) rebuild() {
	p.applyReload()
	p.mu.Lock()
	bs := make([]*backend, 0, len(p.backends))
	for _, b := range p.backends {
		bs = append(bs, b)
	}
	p.mu.Unlock()
	slices.SortFunc(bs, func(a, b *backend) int { return cmp.Compare(a.name, b.name) })
	prev := p.picker.Load()
	pk, err := buildSnapshot(bs, prev, routingOf(*p.conf()))
	if err != nil {
		p.cfg.Logger.Error().Err(err).Msg("cannot build the routing table; keeping the previous one")
		return
	}
	if pk.panic != prev.panic {
		if pk.panic {
			p.cfg.Logger.Warn().Int("healthy", pk.healthy).Int("connected", pk.connected).
				Msg("panic mode: too few healthy gateways; spreading over every connected gateway")
		} else {
			p.cfg.Logger.Info().Int("healthy", pk.healthy).Int("connected", pk.connected).Msg("panic mode over")
		}
	}
	p.picker.Store(pk)
	p.metrics.sync(pk, p.now())
}

// expireDeadlines fails the calls whose deadline passed.
func (p *Proxy) expireDeadlines(now int64) {
	pk := p.picker.Load()
	for _, b := range pk.backends {
		for _, u := range *b.conns.Load() {
			u.expire(now, p.expiredFn, p.abandonFn, p.triedFn)
		}
	}
}

func (p *Proxy) expired(c call) {
	p.stats.deadlinesExceeded.Add(1)
	c.fail(protocol.CodeDeadlineExceeded, "deadline exceeded (enforced by the proxy)")
}

// abandonable reports whether a call whose attempt timed out at now
// (Config.TryTimeout) is sent again: it has attempts left and the retry
// budget grants one (call.abandon). Refused, the attempt goes on for
// another TryTimeout, and asks again then (the retries the budget holds
// are spent on calls answered elsewhere within about one). It runs under
// a call table's lock.
func (p *Proxy) abandonable(c *call, now int64) bool {
	if p.mayRetry(c) && c.abandon() {
		return true
	}
	c.tryBy = p.tryBy(c, now)
	return false
}

// tried sends a call whose attempt on b timed out to another gateway,
// holding the retry abandonable granted. The attempt's late reply finds no
// call in b's table and is dropped.
//
// The next attempt gets a copy of the kept frame: the abandoned one's
// forward may, in theory, still be copying the frame into its connection's
// writer, so its buffer is neither patched nor given back to the pool (the
// collector takes it). This path is the rare one; forwarding is untouched.
// Its deadline is patched to the time left.
func (p *Proxy) tried(b *backend, c call) {
	p.stats.tryTimeouts.Add(1)
	c.tryBy = 0
	c.kept = keepFrame(c.kept.b)
	if c.deadline != 0 {
		// The header's deadline is relative: the next gateway gets what is left.
		left := (c.deadline - p.now()) / int64(time.Millisecond)
		protocol.SetDeadline(c.kept.b, uint32(max(left, 1)))
	}
	c.resend(b)
}

// fasthttpLogger routes fasthttp's messages to zerolog.
type fasthttpLogger struct{ l *zerolog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) { f.l.Debug().Msgf(format, args...) }

// leaveLinger bounds how long the proxy lets a gateway that left the pool
// finish what it sent before cutting its connections.
const leaveLinger = time.Second

// awaitLeave waits, up to d, until every upstream of the backends that
// left the pool has ended, and returns those that are still gone: a
// backend whose member is back in the source's newest snapshot (same
// instance, same address) stays, with its sessions.
//
// A gateway that drained sent MOVED for every session it handed over and
// closed its connections before it left the gossip pool, but the news of
// its leaving can beat those frames here; cutting its connections at once
// would drop them and lose sessions that moved. A gateway that is gone
// without a word (its process stopped, a partition) costs d. And a live
// gateway can be reported dead: a member that was cut off from the others
// believes them dead, and once the cut heals its verdicts reach the pool
// before the victims refute them (each refutes its own death at once, so
// the member is back within milliseconds). Its connections to this proxy
// never broke; losing its sessions would be wrong.
func (p *Proxy) awaitLeave(bs []*backend, d time.Duration) []*backend {
	deadline := time.Now().Add(d)
	var gone []*backend
	for _, b := range bs {
		back := false
		for len(*b.conns.Load()) > 0 && time.Now().Before(deadline) {
			if _, back = p.listed(b); back {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		m, ok := p.listed(b)
		if !ok || len(*b.conns.Load()) == 0 {
			gone = append(gone, b)
			continue
		}
		p.mu.Lock()
		if _, taken := p.backends[b.name]; taken || p.closed {
			p.mu.Unlock()
			gone = append(gone, b)
			continue
		}
		p.backends[b.name] = b
		p.mu.Unlock()
		b.update(m)
		p.cfg.Logger.Info().Str("gateway", b.name).Msg("gateway reported gone is back in the pool; its sessions stay")
	}
	return gone
}

// listed returns b's member from the source's newest snapshot, if it is
// there under b's instance and address.
func (p *Proxy) listed(b *backend) (discovery.Member, bool) {
	for _, m := range p.src.Snapshot().Gateways() {
		if m.Name == b.name {
			return m, m.Instance == b.member.Instance && m.Addrs.TCP == b.addr
		}
	}
	return discovery.Member{}, false
}
