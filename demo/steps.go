package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
)

// stepCount is the number of steps; the summary is the seventh part.
const stepCount = 6

// residentsPer is how many long-lived carts step 2 opens per gateway.
const residentsPer = 10

// step is one part of the demo: its share of Config.Duration and the
// function that runs it.
type step struct {
	share float64
	run   func(ctx context.Context, s *stepRun)
}

func (d *demo) steps() []step {
	return []step{{0.15, d.spread}, {0.15, d.carts}, {0.2, d.join}, {0.2, d.drain}, {0.22, d.kill}, {0.08, d.nats}}
}

// check is one expectation of a step and whether it held.
type check struct {
	name, detail string
	ok           bool
}

// stepResult is what one step measured and concluded.
type stepResult struct {
	N        int
	Short    string
	Gateways []string // the gateways in the pool during the step
	Counts   counts
	Checks   []check
	Took     time.Duration
	done     bool // the step ran to its end (not interrupted)
}

// stepRun is the running state of a step.
type stepRun struct {
	ctx      context.Context // the demo's: it ends on Ctrl-C
	d        *demo
	res      *stepResult
	tally    *tally
	deadline time.Time
}

// title names the step and prints its heading.
func (s *stepRun) title(short, long string) {
	s.res.Short = short
	s.d.p.heading(s.res.N, stepCount, long)
}

// check records and prints an expectation, unless the step was
// interrupted: a step cut short is not judged.
func (s *stepRun) check(ok bool, name, format string, args ...any) {
	if s.ctx.Err() != nil {
		return
	}
	c := check{name: name, ok: ok, detail: fmt.Sprintf(format, args...)}
	s.res.Checks = append(s.res.Checks, c)
	s.d.p.check(c)
}

// hold lets the load run until the step's time is up (or ctx ends) and
// returns what the step counted. From then on the load counts in the next
// step's tally, so that nothing goes uncounted between steps.
func (s *stepRun) hold(ctx context.Context) counts {
	t := time.NewTimer(time.Until(s.deadline))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	s.d.next = newTally()
	s.d.load.begin(s.d.next)
	return s.tally.snapshot()
}

// runStep runs st with a fresh tally and a live status line. done is false
// when ctx ended during the step: its checks are then dropped, since
// they judge a step cut short.
func (d *demo) runStep(ctx context.Context, n int, st step) (res stepResult, done bool) {
	res = stepResult{N: n, Gateways: d.cl.live()}
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	t := d.next
	if t == nil {
		t = newTally()
	}
	d.next = nil
	s := &stepRun{ctx: ctx, d: d, res: &res, tally: t,
		deadline: time.Now().Add(time.Duration(float64(d.cfg.Duration) * st.share))}
	d.load.begin(t)
	stopLive := d.p.startLive(func() string { return liveSummary(s.tally.snapshot(), res.Gateways) })
	st.run(ctx, s)
	stopLive()
	res.Counts = s.tally.snapshot()
	if ctx.Err() != nil {
		res.Checks = nil
		d.p.line("  %s", d.p.red("interrupted"))
		return res, false
	}
	res.done = true
	return res, true
}

// spread is step 1: stateless calls from one connection reach every gateway.
func (d *demo) spread(ctx context.Context, s *stepRun) {
	s.title("stateless spread", "Stateless calls from ONE connection spread over every gateway")
	d.p.say("%d workers share ONE TCP connection to the proxy and call %s Orders.GetOrder, flagged",
		statelessWorkers, ordersTarget.Module)
	d.p.say("STATELESS. An L4 balancer pins a connection, and every call on it, to one gateway;")
	d.p.say("graftlb reads each frame's header and picks a gateway per call.")
	d.load.startStateless()
	c := s.hold(ctx)
	gws := s.res.Gateways
	var total, least int64 = 0, -1
	reached := 0
	for _, g := range gws {
		n := c.StatelessBy[g]
		total += n
		if least < 0 || n < least {
			least = n
		}
		if n > 0 {
			reached++
		}
	}
	d.p.bars(fmt.Sprintf("%s calls over one connection, by the gateway that served them:", num(total)), c.StatelessBy, gws)
	// Not a check: the picker (power of two choices over the expected wait)
	// sends less to a gateway that answered slowly, for instance one starved
	// of CPU on a busy machine, or on its first calls.
	fair := total / int64(max(len(gws), 1))
	d.p.say("The least busy gateway served %s, a fair share is %s: for every call the proxy takes two", num(least), num(fair))
	d.p.say("random gateways and picks the one with the shorter expected wait (its recent latency times")
	d.p.say("its calls in flight), so a gateway that has answered slowly gets less.")
	s.check(reached == len(gws), "every gateway served calls from the one connection", "%d of %d", reached, len(gws))
	s.check(c.failedCalls() == 0 && c.Wrong == 0, "no call failed, every result correct", "%s failed, %s wrong",
		num(c.failedCalls()), num(c.Wrong))
}

// carts is step 2: stateful sessions stay on their owners.
func (d *demo) carts(ctx context.Context, s *stepRun) {
	s.title("stateful carts", "Stateful carts stay on the gateway that owns them")
	d.p.say("Each cart is an object in a session of its own. The proxy places a new session by")
	d.p.say("Maglev hashing of its id, then sends every call of the session to that owner.")
	d.p.say("Every answer names the gateway that ran it, and the contents must match exactly.")
	gws := s.res.Gateways
	want := residentsPer * len(gws)
	carts, _ := d.load.openResidents(ctx, want)
	d.residents = carts
	owned := ownerCounts(carts)
	d.p.event("opened %d long-lived carts (3 items each, read back): %s", len(carts), perGateway(owned, gws))
	if pool, err := d.cl.pool(ctx); err == nil {
		agree := true
		bound := map[string]int64{}
		for _, g := range gws {
			bound[g] = pool[g].Sessions
			agree = agree && pool[g].Sessions == owned[g]
		}
		verdict := "agrees"
		if !agree {
			verdict = "says otherwise"
		}
		d.p.say("The proxy's binding table (GET /pool, sessions) %s: %s", verdict, perGateway(bound, gws))
	}
	d.load.startShoppers()
	d.p.event("%d shoppers start: open a cart, add 3-6 items, check what reads back, release, repeat",
		shoppers)
	c := s.hold(ctx)
	d.p.bars(fmt.Sprintf("%s sessions placed, by owner:", num(sum(c.PlacedBy))), c.PlacedBy, gws)
	d.p.say("%s sessions read back exactly from their owner, %s lost, %s misrouted", num(c.Verified), num(c.Lost), num(c.Misrouted))
	placedAll := true
	for _, g := range gws {
		placedAll = placedAll && c.PlacedBy[g] > 0
	}
	s.check(len(carts) == want, "every long-lived cart read back exactly from its owner", "%d of %d", len(carts), want)
	s.check(placedAll, "sessions are placed on every gateway", "%s", perGateway(c.PlacedBy, gws))
	s.check(c.Verified > 0 && c.Lost == 0 && c.Misrouted == 0 && c.SessFailed == 0,
		"every session stayed on its owner", "%s verified, %s lost, %s misrouted, %s failed",
		num(c.Verified), num(c.Lost), num(c.Misrouted), num(c.SessFailed))
	s.check(c.failedCalls() == 0 && c.Wrong == 0, "no call failed", "%s failed", num(c.failedCalls()))
}

// join is step 3: a new gateway takes new work; existing sessions stay.
func (d *demo) join(ctx context.Context, s *stepRun) {
	name := fmt.Sprintf("gw%d", d.cfg.Gateways+1)
	s.title(name+" joins", "A new gateway joins: new work reaches it, existing sessions stay where they are")
	d.p.say("Maglev hands about 1/N of the hash space to a new member, but a session must not")
	d.p.say("follow its hash: the proxy keeps each session bound to the gateway that holds it.")
	d.p.say("Only new sessions and stateless calls go to %s.", name)
	start := time.Now()
	pr, err := d.cl.addGateway(ctx, name)
	if err != nil {
		s.check(false, name+" joins the pool", "%v", err)
		return
	}
	d.p.event("started %s (pid %d); it joins the cluster through the proxy's gossip address", name, pr.PID())
	_, err = d.cl.waitPool(ctx, 15*time.Second, func(pool map[string]poolMember) bool { return pool[name].State == "ready" })
	if ctx.Err() != nil {
		return
	}
	s.check(err == nil, name+" joins the pool", "ready in the proxy's pool %dms after it was started",
		time.Since(start).Milliseconds())
	s.res.Gateways = d.cl.live()
	outs := d.load.forEach(ctx, d.residents, func(ct *shopCart, rng *rand.Rand) error {
		if err := d.load.addItem(ctx, ct, rng); err != nil {
			return err
		}
		return d.load.verifyCart(ctx, ct)
	})
	ok := countOutcome(outs, verified)
	d.p.event("the %d long-lived carts get one more item each: %d answered by their owner, exact", len(outs), ok)
	c := s.hold(ctx)
	gws := s.res.Gateways
	d.p.bars("stateless calls, by gateway:", c.StatelessBy, gws)
	d.p.bars("new sessions, by owner:", c.PlacedBy, gws)
	s.check(c.StatelessBy[name] > 0, "stateless calls reach "+name, "%s of %s", num(c.StatelessBy[name]), num(sum(c.StatelessBy)))
	s.check(c.PlacedBy[name] > 0, "new sessions are placed on "+name, "%s of %s", num(c.PlacedBy[name]), num(sum(c.PlacedBy)))
	s.check(ok == len(outs), "existing carts stayed on their owners, contents intact", "%d of %d", ok, len(outs))
	s.check(c.failedCalls() == 0 && c.Lost == 0 && c.Misrouted == 0 && c.SessFailed == 0 && c.Wrong == 0,
		"no call failed, no session lost or misrouted", "%s failed calls, %s lost, %s misrouted",
		num(c.failedCalls()), num(c.Lost), num(c.Misrouted))
}

// drain is step 4: a drained gateway hands its sessions over and costs no
// failed call.
func (d *demo) drain(ctx context.Context, s *stepRun) {
	target := busiest(d.residents, s.res.Gateways)
	s.title("drain "+target, "Draining "+target+": its sessions move, zero failed calls")
	d.p.say("SIGTERM drains a gateway: it sends GOAWAY and refuses new sessions (the proxy places")
	d.p.say("them on the next gateway of their preference list). Each cart it holds moves, once")
	d.p.say("idle, to the gateway that list names next: gateway to gateway, acknowledged before it")
	d.p.say("is forgotten, and the proxy follows it. The gateway exits as soon as it holds nothing.")
	held, rest := split(d.residents, target)
	pr := d.cl.gateway(target)
	if pool, err := d.cl.pool(ctx); err == nil {
		d.p.event("%s holds %d long-lived carts and %s in progress (%s bound by the proxy)",
			target, len(held), plural(d.load.inProgress(target), "shopper session"), num(pool[target].Sessions))
	}
	d.load.drained.Store(target, true)
	w := &drainWatch{gw: target, since: time.Now()}
	d.load.watch.Store(w)
	defer d.load.watch.Store(nil)
	start := time.Now()
	if err := pr.Signal(syscall.SIGTERM); err != nil {
		s.check(false, "drain "+target, "SIGTERM: %v", err)
		return
	}
	d.p.event("SIGTERM %s", target)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	st := d.cl.watchHandoff(wctx, pr)
	cancel()
	if ctx.Err() != nil {
		return
	}
	code, exited := -1, pr.Exited()
	took := time.Since(start)
	others := slices.DeleteFunc(slices.Clone(s.res.Gateways), func(g string) bool { return g == target })
	if exited {
		code = pr.ExitCode()
		d.p.event("%s handed %s over (%s) and exited with code %d, %.1fs after SIGTERM", target,
			plural(int(st.SessionsMoved), "session"), perGateway(st.SessionsMovedTo, others), code, took.Seconds())
	}
	outs := d.load.forEach(ctx, held, func(ct *shopCart, _ *rand.Rand) error {
		if err := d.load.verifyCart(ctx, ct); err != nil {
			return err
		}
		return d.load.release(ctx, ct)
	})
	ok := countOutcome(outs, verified)
	now := map[string]int64{}
	for _, ct := range held {
		now[ct.owner]++
	}
	d.p.event("%d of its %d long-lived carts read back exactly after it left, from %s (then released)",
		ok, len(held), perGateway(now, others))
	d.residents = rest
	if _, err := d.cl.waitPool(ctx, 10*time.Second, func(pool map[string]poolMember) bool {
		_, in := pool[target]
		return !in
	}); err == nil {
		d.p.event("%s left the proxy's pool", target)
	}
	c := s.hold(ctx)
	gws := s.res.Gateways
	d.p.bars("new sessions during the step, by owner:", c.PlacedBy, gws)
	s.check(ok == len(held), "its carts moved and read back exactly", "%d of %d", ok, len(held))
	s.check(st.SessionsMoved >= int64(len(held)) && st.SessionsLostAtDrain == 0, target+" handed its sessions over, lost none",
		"%d moved, %d lost", st.SessionsMoved, st.SessionsLostAtDrain)
	s.check(w.hits.Load() == 0, "no new session placed on "+target+" once it was draining", "%d", w.hits.Load())
	s.check(exited && code == 0 && took < 5*time.Second, target+" exited 0 within seconds of SIGTERM",
		"exited %v, code %d, after %.1fs", exited, code, took.Seconds())
	s.check(c.failedCalls() == 0 && c.Lost == 0 && c.Misrouted == 0 && c.SessFailed == 0 && c.Wrong == 0,
		"zero failed calls", "%s calls, %s failed, %s sessions verified, %s lost, %s misrouted",
		num(c.Calls), num(c.failedCalls()), num(c.Verified), num(c.Lost), num(c.Misrouted))
}

// kill is step 5: a killed gateway takes exactly its own sessions.
func (d *demo) kill(ctx context.Context, s *stepRun) {
	victim := busiest(d.residents, s.res.Gateways)
	s.title("kill "+victim, "Killing "+victim+": only its sessions are lost")
	d.p.say("SIGKILL: no drain, no goodbye. What lived on %s is gone, and the proxy must answer", victim)
	d.p.say("SESSION_LOST for exactly its sessions (the client then opens new ones). Nothing else")
	d.p.say("may notice: GetOrder is IDEMPOTENT, so a call in flight on %s is retried elsewhere.", victim)
	held, _ := split(d.residents, victim)
	before, _ := d.cl.stats(ctx)
	d.p.event("%s holds %d of the %d long-lived carts and %s in progress",
		victim, len(held), len(d.residents), plural(d.load.inProgress(victim), "shopper session"))
	pr := d.cl.gateway(victim)
	start := time.Now()
	if err := pr.Signal(syscall.SIGKILL); err != nil {
		s.check(false, "kill "+victim, "SIGKILL: %v", err)
		return
	}
	d.p.event("SIGKILL %s", victim)
	_, err := d.cl.waitPool(ctx, 15*time.Second, func(pool map[string]poolMember) bool {
		m, in := pool[victim]
		return !in || m.State == "down"
	})
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		d.p.event("the proxy marked %s down after %dms: its connections broke, a redial was refused",
			victim, time.Since(start).Milliseconds())
	} else {
		d.p.event("the proxy does not show %s down: %v", victim, err)
	}
	outs := d.load.forEach(ctx, d.residents, func(ct *shopCart, rng *rand.Rand) error {
		if err := d.load.addItem(ctx, ct, rng); err != nil {
			return err
		}
		return d.load.verifyCart(ctx, ct)
	})
	var lostHeld, okRest int
	var kept []*shopCart
	for i, ct := range d.residents {
		switch {
		case ct.owner == victim && outs[i] == lost:
			lostHeld++
		case ct.owner != victim && outs[i] == verified:
			okRest++
			kept = append(kept, ct)
		}
	}
	rest := len(d.residents) - len(held)
	d.p.event("long-lived carts: %d of %d on %s got SESSION_LOST, %d of %d elsewhere read back exact",
		lostHeld, len(held), victim, okRest, rest)
	d.residents = kept
	c := s.hold(ctx)
	d.p.bars("calls served during the step, by gateway:", c.ServedBy, s.res.Gateways)
	d.p.say("%s sessions lost (%d long-lived carts, %s), by owner: %s",
		num(c.Lost), lostHeld, plural(int(c.Lost)-lostHeld, "shopper session"), lostOwners(c.LostBy))
	if after, err := d.cl.stats(ctx); err == nil {
		d.p.say("The proxy counted %s sessions lost (GET /stats); the demo saw %s.",
			num(after.SessionsLost-before.SessionsLost), num(c.Lost))
	}
	onlyVictim := true
	for owner := range c.LostBy {
		onlyVictim = onlyVictim && (owner == victim || owner == "")
	}
	otherFailures := c.failedCalls() - c.Failed["SESSION_LOST"]
	s.check(lostHeld == len(held), "every cart on "+victim+" got SESSION_LOST", "%d of %d", lostHeld, len(held))
	s.check(okRest == rest, "every cart elsewhere read back exactly", "%d of %d", okRest, rest)
	s.check(onlyVictim, "only "+victim+"'s sessions were lost", "%s", lostOwners(c.LostBy))
	s.check(otherFailures == 0 && c.SessFailed == 0 && c.Misrouted == 0 && c.Wrong == 0,
		"everything else unaffected", "%s calls, %s other failures, %s sessions misrouted",
		num(c.Calls), num(otherFailures), num(c.Misrouted))
}

// busiest returns the gateway among gws that owns the most carts.
func busiest(carts []*shopCart, gws []string) string {
	owned := ownerCounts(carts)
	best := ""
	for _, g := range gws {
		if best == "" || owned[g] > owned[best] {
			best = g
		}
	}
	return best
}

// split separates the carts owned by gw from the others.
func split(carts []*shopCart, gw string) (on, off []*shopCart) {
	for _, ct := range carts {
		if ct.owner == gw {
			on = append(on, ct)
		} else {
			off = append(off, ct)
		}
	}
	return on, off
}

func ownerCounts(carts []*shopCart) map[string]int64 {
	m := map[string]int64{}
	for _, ct := range carts {
		m[ct.owner]++
	}
	return m
}

func countOutcome(outs []outcome, o outcome) int {
	n := 0
	for _, x := range outs {
		if x == o {
			n++
		}
	}
	return n
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// perGateway formats counts as "gw1 10, gw2 9, ...".
func perGateway(m map[string]int64, gws []string) string {
	parts := make([]string, len(gws))
	for i, g := range gws {
		parts[i] = g + " " + num(m[g])
	}
	return strings.Join(parts, ", ")
}

// lostOwners formats lost sessions by owner; "" is a session whose first
// call was still on its way to the gateway that died.
func lostOwners(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		if k == "" {
			parts[i] = num(m[k]) + " still being opened"
		} else {
			parts[i] = k + " " + num(m[k])
		}
	}
	return strings.Join(parts, ", ")
}

func joinNames(names []string) string { return strings.Join(names, ", ") }

// plural formats "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return num(int64(n)) + " " + thing + "s"
}
