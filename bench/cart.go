package bench

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// outcome is how a cart session ended.
type outcome uint8

const (
	verified  outcome = iota + 1 // Items and Total read back exactly what was built
	lost                         // SESSION_LOST, or the cart could not be read back
	misrouted                    // a call saw another cart's state, or no cart
)

// maxRetries bounds the consecutive failures of one step of a session
// (a refused constructor, an unreadable cart) before the session is lost.
const maxRetries = 3

type phase uint8

const (
	phaseNew   phase = iota // create the Cart
	phaseAdd                // AddItem, SessionCalls times
	phaseItems              // read Items back
	phaseTotal              // read Total back
)

// sessionInfo is what the scenario's marks need of a session.
type sessionInfo struct {
	// owner is the gateway the session's latest named result came from;
	// empty until one did. owners lists every gateway that served it, in
	// order: more than one when a draining gateway handed it over.
	owner  string
	owners []string
}

// cartUser runs cart sessions one after the other: create a Cart in a new
// session, add SessionCalls items checking each answer, read Items and
// Total back, and count the session verified, lost or misrouted. Every
// answer must name the gateway of the first, or the one a drained owner
// handed the session to; a session's life is a
// bounded number of calls, so a draining gateway sees its sessions end.
type cartUser struct {
	e    *env
	c    *client.Conn
	name string
	seq  int // sessions started

	// The session in progress; s is nil between sessions.
	s       *client.Session
	obj     *client.Object
	info    sessionInfo
	phase   phase
	st      cart.State // what the cart must hold
	retries int
	// finishing is set once the run stopped: no more pauses.
	finishing bool
	// uncertain is an AddItem whose outcome is unknown (its connection
	// broke, its deadline passed): the read-back may or may not show it.
	uncertain *addItem
}

type addItem struct {
	name  string
	price int64
}

func newCartUser(e *env, c *client.Conn, name string) *cartUser {
	return &cartUser{e: e, c: c, name: name}
}

func (u *cartUser) step(t0 time.Time) {
	if u.s == nil {
		u.seq++
		u.s = u.c.NewSession()
		u.obj, u.info, u.phase, u.st, u.retries, u.uncertain = nil, sessionInfo{}, phaseNew, cart.State{}, 0, nil
		u.e.rec.sessionStarted()
	}
	if u.retries > 0 {
		time.Sleep(min(10*time.Millisecond<<u.retries, 200*time.Millisecond))
	} else if p := u.e.cfg.SessionPause; p > 0 && u.phase != phaseNew && !u.finishing {
		time.Sleep(p)
		t0 = t0.Add(p) // a user's pause is not the call's latency
	}
	switch u.phase {
	case phaseNew:
		u.create(t0)
	case phaseAdd:
		u.add(t0)
	case phaseItems:
		u.readItems(t0)
	default:
		u.readTotal(t0)
	}
}

// finish ends the session in progress: no more items, read back what the
// cart holds.
func (u *cartUser) finish() {
	u.finishing = true
	for u.s != nil {
		if u.phase == phaseAdd {
			u.phase = phaseItems
		}
		u.step(time.Now())
	}
}

func (u *cartUser) create(t0 time.Time) {
	ctx, cancel := u.e.callCtx()
	obj, err := u.s.New(ctx, cart.Name+"@"+cart.Version, "Cart")
	cancel()
	if err != nil {
		code := codeOf(err)
		u.e.rec.fail(t0, code, err.Error())
		if code == protocol.CodeSessionLost.String() || u.retry() {
			u.end(lost)
			return
		}
		// Refused (DRAINING, OVERLOADED, UNAVAILABLE...) or unanswered:
		// try again under a fresh session id, so that a constructor that
		// did run somewhere leaves only an orphan behind.
		u.c.ForgetSession(u.s)
		u.s = u.c.NewSession()
		return
	}
	u.e.rec.succeed(t0, "")
	u.obj, u.phase, u.retries = obj, phaseAdd, 0
}

func (u *cartUser) add(t0 time.Time) {
	k := len(u.st.Items) + 1
	it := addItem{name: u.name + "-" + strconv.Itoa(u.seq) + "-" + strconv.Itoa(k), price: int64(100*k + 1)}
	ctx, cancel := u.e.callCtx()
	res, err := u.obj.Call(ctx, "AddItem", it.name, it.price)
	cancel()
	if err != nil {
		code := codeOf(err)
		u.e.rec.fail(t0, code, err.Error())
		switch code {
		case protocol.CodeSessionLost.String():
			u.end(lost)
		case protocol.CodeNotFound.String():
			u.end(misrouted) // the session exists there, its cart does not
		case protocol.CodeOverloaded.String(), protocol.CodeCircuitOpen.String():
			if u.retry() { // refused before it ran; try it again, or give up adding
				u.phase, u.retries = phaseItems, 0
			}
		default:
			// It may have run: read the cart back, allowing for it.
			u.uncertain, u.phase = &it, phaseItems
		}
		return
	}
	var a cart.Added
	if err = res.Decode(&a); err == nil {
		u.st, err = u.st.Add(a, it.name, it.price, u.sameOwner)
	}
	if err != nil {
		u.misrouted(t0, err)
		return
	}
	u.e.rec.succeed(t0, a.Gateway)
	u.retries = 0
	if len(u.st.Items) >= u.e.cfg.SessionCalls {
		u.phase = phaseItems
	}
}

func (u *cartUser) readItems(t0 time.Time) {
	ctx, cancel := u.e.callCtx()
	res, err := u.obj.Call(ctx, "Items")
	cancel()
	if err != nil {
		u.readFailed(t0, err)
		return
	}
	var r cart.ItemsResult
	if err = res.Decode(&r); err == nil {
		err = u.st.CheckItems(r, u.sameOwner)
	}
	if err != nil && u.uncertain != nil {
		// The AddItem whose outcome was unknown did run.
		alt := cart.State{Items: append(slices.Clip(u.st.Items), u.uncertain.name), Total: u.st.Total + u.uncertain.price}
		if alt.CheckItems(r, u.sameOwner) == nil {
			u.st, err = alt, nil
		}
	}
	if err != nil {
		u.misrouted(t0, err)
		return
	}
	u.e.rec.succeed(t0, r.Gateway)
	u.uncertain, u.phase, u.retries = nil, phaseTotal, 0
}

func (u *cartUser) readTotal(t0 time.Time) {
	ctx, cancel := u.e.callCtx()
	res, err := u.obj.Call(ctx, "Total")
	cancel()
	if err != nil {
		u.readFailed(t0, err)
		return
	}
	var r cart.TotalResult
	if err = res.Decode(&r); err == nil {
		err = u.st.CheckTotal(r, u.sameOwner)
	}
	if err != nil {
		u.misrouted(t0, err)
		return
	}
	u.e.rec.succeed(t0, r.Gateway)
	u.end(verified)
}

// readFailed handles a failed read-back: reads are safe to repeat, up to
// maxRetries times.
func (u *cartUser) readFailed(t0 time.Time, err error) {
	code := codeOf(err)
	u.e.rec.fail(t0, code, err.Error())
	switch {
	case code == protocol.CodeSessionLost.String():
		u.end(lost)
	case code == protocol.CodeNotFound.String():
		u.end(misrouted)
	case u.retry():
		u.end(lost) // the cart cannot be read: as good as lost
	}
}

// retry counts a failed attempt at the current step and reports whether
// the session has used up its retries.
func (u *cartUser) retry() bool {
	u.retries++
	return u.retries > maxRetries
}

// sameOwner reports whether gw may be the session's gateway, taking it as
// the owner if it is the first one named. Another gateway may take over
// only from an owner that the scenario drained (a term event), which
// hands its sessions over (protocol/SPEC.md section 7, Handoff); the
// caller's exact check of the state then tells a handover from a
// misrouted call, which sees no cart or another one.
func (u *cartUser) sameOwner(gw string) bool {
	switch {
	case gw == "":
		return false
	case gw == u.info.owner:
		return true
	case u.info.owner != "" && !u.e.marks.drained(u.info.owner):
		return false
	}
	u.info.owner = gw
	u.info.owners = append(u.info.owners, gw)
	return true
}

// misrouted ends the session on an answer that the cart's state check
// (cart.State) refused.
func (u *cartUser) misrouted(t0 time.Time, err error) {
	u.e.rec.fail(t0, codeMisrouted, fmt.Sprintf("a cart on %s: %v", u.info.owner, err))
	u.end(misrouted)
}

func (u *cartUser) end(o outcome) {
	u.e.rec.sessionEnded(o)
	u.e.marks.sessionEnded(u.info, o, time.Now())
	u.c.ForgetSession(u.s)
	u.s, u.obj = nil, nil
}
