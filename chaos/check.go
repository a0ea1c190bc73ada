package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Invariants a Violation names.
const (
	InvMisrouted   = "misrouted"          // 1: a stateful call or read-back on the wrong gateway or state
	InvLostNoCause = "lost-without-cause" // 2: SESSION_LOST though its owner lived
	InvStateless   = "stateless-failed"   // 3: a stateless call failed with a healthy gateway left
	InvForeign     = "foreign-delivery"   // 4: a callback or event reached another session's client
	InvProcess     = "process"            // 5: a process did not exit, or one leaked
	InvRecovery    = "recovery"           // 6: throughput or pool truth not back within the bound
)

// Violation is a guarantee the history shows broken.
type Violation struct {
	Invariant string `json:"invariant"`
	Detail    string `json:"detail"`
	T         int64  `json:"t_ms"`
}

// CheckParams are what the checker must know of the run.
type CheckParams struct {
	// Gateways are the names of the gateways at the start (joins add more).
	Gateways []string
	// SessionTTL is the gateways' session TTL (ms): a session idle longer
	// may be lost.
	SessionTTL int64
	// Grace (ms) is how long after a fault was undone its effects excuse a
	// failure: a restarted process must be found, a connection redialled.
	Grace int64
	// End is when the run ended (ms), for faults never undone.
	End int64
	// RecoveryBound (ms): a fault whose recovery took longer is a violation.
	RecoveryBound int64
	// Stalls are times the run's own process did not run: a deadline that
	// passed during one says nothing of the proxies.
	Stalls []Stall
}

// notRun are the codes that say a call did not run, so it may be tried
// again (SPEC.md section 5).
var notRun = map[string]bool{"UNAVAILABLE": true, "OVERLOADED": true, "CIRCUIT_OPEN": true, "DRAINING": true}

// Check verifies the invariants over a history: ops in any order, faults
// as run. It returns the violations, earliest first.
func Check(ops []Op, faults []Fault, p CheckParams) []Violation {
	c := checker{p: p, faults: faults}
	var out []Violation
	out = append(out, c.carts(ops)...)
	out = append(out, c.stateless(ops)...)
	out = append(out, c.deliveries(ops)...)
	out = append(out, c.recovery()...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}

type checker struct {
	p      CheckParams
	faults []Fault
}

// overlaps returns the first fault of one of kinds (on target, if not
// "") whose window overlaps [from, to].
func (c *checker) overlaps(from, to int64, target string, kinds ...string) (Fault, bool) {
	for _, f := range c.faults {
		if !slices.Contains(kinds, f.Kind) || (target != "" && f.Target != target) {
			continue
		}
		if a, b := f.window(c.p.Grace, c.p.End); a <= to && from <= b {
			return f, true
		}
	}
	return Fault{}, false
}

// drainedBetween reports whether gw started a drain between from and to:
// its sessions may then have moved to another gateway.
func (c *checker) drainedBetween(gw string, from, to int64) bool {
	_, ok := c.drainedAt(gw, from, to)
	return ok
}

// drainedAt returns when gw started a drain between from and to.
func (c *checker) drainedAt(gw string, from, to int64) (int64, bool) {
	for _, f := range c.faults {
		if f.Kind == FaultTermGateway && f.Target == gw && f.T >= from-c.p.Grace && f.T <= to {
			return f.T, true
		}
	}
	return 0, false
}

// killSlack is how long before a session's first call a kill of its
// gateway may still have been on its way (ms).
const killSlack = 1000

// killedBetween reports whether gw ("" for any) was killed between from and to.
func (c *checker) killedBetween(gw string, from, to int64) (Fault, bool) {
	for _, f := range c.faults {
		if f.Kind == FaultKillGateway && (gw == "" || f.Target == gw) && f.T >= from && f.T <= to {
			return f, true
		}
	}
	return Fault{}, false
}

// isolateDeathMin is how long an isolation must last (ms) before gossip
// may have declared its gateway dead: memberlist's probe (1 s), its
// indirect probes and the suspicion that follows take longer (6-10 s
// measured), so a shorter isolation excuses no lost session.
const isolateDeathMin = 3000

// isolatedBetween returns an isolation of gw ("" for any) overlapping
// [from, to] long enough for gossip to have declared gw dead.
func (c *checker) isolatedBetween(gw string, from, to int64) (Fault, bool) {
	for _, f := range c.faults {
		if f.Kind != FaultIsolateGateway || (gw != "" && f.Target != gw) {
			continue
		}
		end := f.End
		if end == 0 {
			end = c.p.End
		}
		if a, b := f.window(c.p.Grace, c.p.End); a <= to && from <= b && end-f.T >= isolateDeathMin {
			return f, true
		}
	}
	return Fault{}, false
}

// partitionSlack is how long after a partition starts (ms) calls through
// a cut-off proxy may still be placed on its gateway: until the proxy's
// active checks (3 failed PINGs a second apart) or outlier detection take
// it out of the picker.
const partitionSlack = 5000

// cutInFlight returns a partition that cut the gateway o may have been
// sent to off from o's proxy while o was in flight, o placed before the
// proxy could know.
//
// Later calls are excused only when the proxy says it sent them to the cut
// gateway ("connection to gateway X broke with the call in flight"): in
// panic mode (few healthy gateways) a proxy spreads calls over every
// connected one, and a cut gateway's silent connections count as
// connected until gossip declares it dead and they are cut.
func (c *checker) cutInFlight(o Op) (Fault, bool) {
	for _, f := range c.faults {
		if (f.Kind != FaultPartitionGateway && f.Kind != FaultIsolateGateway) || !f.cutFrom(o.Proxy) {
			continue
		}
		a, b := f.window(c.p.Grace, c.p.End)
		if o.Start <= f.T+partitionSlack && o.End >= f.T ||
			o.Start <= b && o.End >= a && strings.Contains(o.Detail, "connection to gateway "+f.Target+" broke") {
			return f, true
		}
	}
	return Fault{}, false
}

// carts checks invariants 1 and 2 for every cart, op by op in the order
// its worker made them (one worker makes a cart's calls one at a time).
func (c *checker) carts(ops []Op) []Violation {
	type key struct{ worker, cart int }
	byCart := map[key][]Op{}
	for _, o := range ops {
		switch o.Kind {
		case OpCartNew, OpCartAdd, OpCartRead:
			k := key{o.Worker, o.Cart}
			byCart[k] = append(byCart[k], o)
		}
	}
	var out []Violation
	for _, cops := range byCart {
		sort.SliceStable(cops, func(i, j int) bool { return cops[i].Start < cops[j].Start })
		out = append(out, c.cart(cops)...)
	}
	return out
}

func (c *checker) cart(ops []Op) []Violation {
	var (
		owner   string
		names   []string
		born    = ops[0].Start
		lastOK  = ops[0].Start
		ownerAt int64 // when owner last answered
	)
	where := func(o Op) string {
		return fmt.Sprintf("cart %d of worker %d (session %s, via %s, %d-%d ms)", o.Cart, o.Worker, o.Session, o.Proxy, o.Start, o.End)
	}
	for _, o := range ops {
		if !o.OK() {
			if o.Code == "SESSION_LOST" {
				// A fault's time is taken just before its signal: a session
				// placed in that moment may be on the gateway being killed.
				if _, ok := c.killedBetween(owner, born-killSlack, o.End); ok || o.Start-lastOK > c.p.SessionTTL {
					return nil
				}
				// Gossip may declare an isolated gateway dead: the proxies
				// then drop it and lose its sessions. A partition from one
				// proxy excuses nothing: the others vouch for the gateway
				// (memberlist's indirect probes), and it stays in the pool.
				if _, ok := c.isolatedBetween(owner, born-killSlack, o.End); ok {
					return nil
				}
				// A drain may have handed the session to a gateway the
				// client never heard from (it made no call since), which
				// was then killed.
				if t, ok := c.drainedAt(owner, ownerAt, o.End); ok {
					if _, ok := c.killedBetween("", t, o.End); ok {
						return nil
					}
				}
				return []Violation{{InvLostNoCause, fmt.Sprintf("%s: SESSION_LOST (%s) though its owner %q was not killed and it idled %d ms",
					where(o), o.Detail, owner, o.Start-lastOK), o.End}}
			}
			if notRun[o.Code] {
				continue // did not run: the state is unchanged
			}
			return nil // it may or may not have run: the worker gave the cart up
		}
		if o.Kind == OpCartNew {
			continue
		}
		if owner != "" && o.Gateway != owner && !c.drainedBetween(owner, ownerAt, o.End) {
			return []Violation{{InvMisrouted, fmt.Sprintf("%s: answered by %s, but the session was on %s (last answer at %d ms) and no drain moved it",
				where(o), o.Gateway, owner, ownerAt), o.End}}
		}
		owner, ownerAt, lastOK = o.Gateway, o.End, o.End
		switch o.Kind {
		case OpCartAdd:
			names = append(names, o.Name)
			if o.Items != len(names) {
				return []Violation{{InvMisrouted, fmt.Sprintf("%s: AddItem(%s) answered %d items, want %d (the acknowledged adds)",
					where(o), o.Name, o.Items, len(names)), o.End}}
			}
			if want := sumPrices(names); o.Total != want {
				return []Violation{{InvMisrouted, fmt.Sprintf("%s: AddItem(%s) answered total %d, want %d", where(o), o.Name, o.Total, want), o.End}}
			}
		case OpCartRead:
			if !slices.Equal(o.Names, names) || o.Total != sumPrices(names) {
				return []Violation{{InvMisrouted, fmt.Sprintf("%s: read back %v (total %d), want exactly the acknowledged %v (total %d)",
					where(o), o.Names, o.Total, names, sumPrices(names)), o.End}}
			}
		}
	}
	return nil
}

// ItemName is the name the workload gives the n-th item of a cart, priced
// price: the checker reads the price back from the name.
func ItemName(n int, price int64) string { return fmt.Sprintf("item-%d-%d", n, price) }

func sumPrices(names []string) int64 {
	var sum int64
	for _, n := range names {
		var i int
		var p int64
		if _, err := fmt.Sscanf(n, "item-%d-%d", &i, &p); err == nil {
			sum += p
		}
	}
	return sum
}

// stateless checks invariant 3.
func (c *checker) stateless(ops []Op) []Violation {
	var out []Violation
	for _, o := range ops {
		if o.Kind != OpStateless || o.OK() {
			continue
		}
		if c.excused(o) != "" {
			continue
		}
		out = append(out, Violation{InvStateless, fmt.Sprintf("worker %d's %s call via %s failed with %s (%s) at %d-%d ms while healthy gateways remained",
			o.Worker, idem(o.Idempotent), o.Proxy, o.Code, o.Detail, o.Start, o.End), o.End})
	}
	return out
}

// excused returns why a failed stateless call does not break invariant 3,
// or "" if nothing excuses it.
func (c *checker) excused(o Op) string {
	if f, ok := c.overlaps(o.Start, o.End, o.Proxy, FaultKillProxy, FaultTermProxy); ok {
		return "its proxy had " + f.Kind
	}
	if o.Code == "INTERNAL" {
		if f, ok := c.overlaps(o.Start, o.End, "", FaultFailGateway); ok {
			return f.Target + " was made to fail"
		}
	}
	if !o.Idempotent {
		if f, ok := c.overlaps(o.Start, o.End, "", FaultKillGateway, FaultStopGateway); ok {
			return "non-idempotent, in flight while " + f.Target + " had " + f.Kind
		}
	}
	if f, ok := c.cutInFlight(o); ok {
		// The connection stays open, silent: no retry, IDEMPOTENT or not.
		return "in flight through " + o.Proxy + " when " + f.Target + " was cut off from it (" + f.Kind + ")"
	}
	if c.noneHealthy(o.Start, o.End) {
		return "no healthy gateway"
	}
	if o.Code == "DEADLINE_EXCEEDED" {
		for _, st := range c.p.Stalls {
			if st.From <= o.End && o.Start <= st.To {
				return fmt.Sprintf("the checker's own process stalled %d-%d ms", st.From, st.To)
			}
		}
	}
	return ""
}

// noneHealthy reports whether every gateway known by from had a fault
// that makes it unable to serve during [from, to].
func (c *checker) noneHealthy(from, to int64) bool {
	gws := map[string]bool{}
	for _, g := range c.p.Gateways {
		gws[g] = true
	}
	for _, f := range c.faults {
		if f.Kind == FaultJoinGateway && f.T <= from {
			gws[f.Target] = true
		}
	}
	for g := range gws {
		if _, ok := c.overlaps(from, to, g, FaultKillGateway, FaultStopGateway, FaultTermGateway, FaultFailGateway, FaultIsolateGateway); !ok {
			return false
		}
	}
	return true
}

func idem(b bool) string {
	if b {
		return "idempotent"
	}
	return "non-idempotent"
}

// deliveries checks invariant 4.
func (c *checker) deliveries(ops []Op) []Violation {
	var out []Violation
	for _, o := range ops {
		switch {
		case o.Kind == OpForeignEvent:
			out = append(out, Violation{InvForeign, fmt.Sprintf("worker %d (session %s) via %s got %s at %d ms", o.Worker, o.Session, o.Proxy, o.Detail, o.End), o.End})
		case (o.Kind == OpCallback || o.Kind == OpEvents) && o.OK() && o.Detail != "":
			out = append(out, Violation{InvForeign, fmt.Sprintf("worker %d (session %s) via %s, %s at %d-%d ms: %s", o.Worker, o.Session, o.Proxy, o.Kind, o.Start, o.End, o.Detail), o.End})
		}
	}
	return out
}

// recovery checks invariant 6 from what the run measured of each fault.
func (c *checker) recovery() []Violation {
	var out []Violation
	for _, f := range c.faults {
		if f.Err != "" {
			out = append(out, Violation{InvRecovery, fmt.Sprintf("%s of %s at %d ms could not be run or undone: %s", f.Kind, f.Target, f.T, f.Err), f.T})
			continue
		}
		done := f.End
		if f.Kind == FaultJoinGateway {
			done = f.T
		}
		if done == 0 || c.p.End-done < c.p.RecoveryBound {
			continue // still on, or too close to the end to tell
		}
		var what []string
		if !f.Recovered {
			what = append(what, "throughput not back to 90%")
		}
		if !f.PoolRecovered {
			what = append(what, "a proxy's pool not showing the truth ("+f.PoolDiff+")")
		}
		if f.ThroughputMs > c.p.RecoveryBound || f.PoolTruthMs > c.p.RecoveryBound {
			what = append(what, fmt.Sprintf("recovery took %d ms (throughput) and %d ms (pool)", f.ThroughputMs, f.PoolTruthMs))
		}
		if len(what) > 0 {
			out = append(out, Violation{InvRecovery, fmt.Sprintf("%s of %s at %d ms (undone at %d ms): %s within %d ms",
				f.Kind, f.Target, f.T, f.End, strings.Join(what, " and "), c.p.RecoveryBound), done + c.p.RecoveryBound})
		}
	}
	return out
}
