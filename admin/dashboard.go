package admin

import (
	"bufio"
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/graftlb/graftlb/balancer"
	"github.com/valyala/fasthttp"
)

// The dashboard is one page (dashboard.html, embedded: no CDN, no build
// step) fed by Server-Sent Events from GET /events. A watcher goroutine
// samples the proxy's View every DashboardInterval and turns the cumulative
// counters into what a person reads: calls per second, p99 latency, a
// state per gateway, and a timeline of what changed (joins, drains, checks
// failing, ejections, deaths, sessions lost). Each browser gets the last
// few minutes at once and then every sample.

//go:embed dashboard.html
var dashboardPage []byte

// Dashboard defaults.
const (
	// DashboardInterval is how often the dashboard samples the proxy.
	DashboardInterval = 500 * time.Millisecond
	// dashboardHistory is how much of the past the charts show.
	dashboardHistory = 5 * time.Minute
	// rateWindow and p99Window are what rates and percentiles average over.
	rateWindow = 2 * time.Second
	p99Window  = 5 * time.Second
	// maxTimeline is how many events the timeline keeps.
	maxTimeline = 200
	// maxFeeds bounds the browsers watching at once (each holds an admin
	// connection).
	maxFeeds = 32
	// goneShown is how long a gateway that left the pool stays in the table.
	goneShown = 2 * time.Minute
	// feedWriteTimeout bounds each write of the feed to a browser.
	feedWriteTimeout = 10 * time.Second
)

// Row is one gateway of the dashboard's table.
type Row struct {
	Name     string  `json:"name"`
	State    string  `json:"state"` // up, down, check failing, ejected, breaker open, draining, drained, half-open, left
	Rate     float64 `json:"rate"`  // calls/s
	P99      float64 `json:"p99"`   // ms; -1: no call in the window
	InFlight int64   `json:"in_flight"`
	Sessions int64   `json:"sessions"`
	Lost     uint64  `json:"lost"`
	Ejected  uint64  `json:"ejections"`
	Breaker  string  `json:"breaker"`
	Errors   float64 `json:"errors"` // error answers/s
}

// Event is one entry of the timeline.
type Event struct {
	Seq     int       `json:"seq"`
	At      time.Time `json:"at"`
	Gateway string    `json:"gateway,omitempty"`
	Kind    string    `json:"kind"` // join, leave, down, up, drain, check, eject, breaker, lost, panic
	Text    string    `json:"text"`
}

// point is one sample of the charts.
type point struct {
	T    int64              `json:"t"` // unix ms
	Rate map[string]float64 `json:"rate"`
	P99  map[string]float64 `json:"p99"`
}

// feedMsg is one message of the feed.
type feedMsg struct {
	Type     string         `json:"type"` // init, tick
	T        int64          `json:"t"`
	Rows     []Row          `json:"rows"`
	Point    point          `json:"point"`
	Events   []Event        `json:"events"`
	History  []point        `json:"history,omitempty"`
	Stats    balancer.Stats `json:"stats"`
	Interval int64          `json:"interval_ms"`
}

// dashboard is the watcher and its subscribers.
type dashboard struct {
	view  func() balancer.View
	every time.Duration

	mu       sync.Mutex
	samples  []sample // the last p99Window of views, oldest first
	rows     map[string]Row
	gone     map[string]time.Time // gateways that left, and when
	panicked bool
	history  []point
	events   []Event
	seq      int
	last     *feedMsg
	feeds    map[chan []byte]struct{}
}

type sample struct {
	at time.Time
	v  balancer.View
}

// HandleDashboard serves the dashboard: GET / (the page) and GET /events
// (its feed), sampling view every DashboardInterval while the server runs.
func (s *Server) HandleDashboard(view func() balancer.View) {
	d := &dashboard{view: view, every: DashboardInterval, rows: map[string]Row{}, gone: map[string]time.Time{},
		feeds: map[chan []byte]struct{}{}}
	s.Handle("/", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/html; charset=utf-8")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetBody(dashboardPage)
	})
	s.Handle("/events", func(ctx *fasthttp.RequestCtx) { d.serveFeed(ctx, s.closing) })
	s.background = append(s.background, d.run)
}

// run samples until stop is closed.
func (d *dashboard) run(stop <-chan struct{}) {
	t := time.NewTicker(d.every)
	defer t.Stop()
	d.tick(time.Now())
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			d.tick(now)
		}
	}
}

// tick takes a sample, updates the rows, history and timeline, and sends
// the result to every feed.
func (d *dashboard) tick(now time.Time) {
	v := d.view()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.samples = append(d.samples, sample{now, v})
	for len(d.samples) > 2 && now.Sub(d.samples[1].at) >= p99Window {
		d.samples = d.samples[1:]
	}
	var fresh []Event
	add := func(gw, kind, format string, args ...any) {
		d.seq++
		e := Event{Seq: d.seq, At: now, Gateway: gw, Kind: kind, Text: fmt.Sprintf(format, args...)}
		fresh = append(fresh, e)
		d.events = append(d.events, e)
	}
	pt := point{T: now.UnixMilli(), Rate: map[string]float64{}, P99: map[string]float64{}}
	seen := map[string]bool{}
	for _, g := range v.Gateways {
		seen[g.Name] = true
		r := d.row(g, now)
		prev, had := d.rows[g.Name]
		if r.State == "left" {
			at, known := d.gone[g.Name]
			if !known {
				at = now
				d.gone[g.Name] = now
				if had {
					add(g.Name, "leave", "%s left the pool", g.Name)
				}
			}
			if now.Sub(at) > goneShown {
				delete(d.rows, g.Name)
				continue
			}
		}
		switch {
		case r.State == "left":
		case !had || prev.State == "left":
			add(g.Name, "join", "%s joined the pool (%s)", g.Name, r.State)
			delete(d.gone, g.Name)
		case prev.State != r.State:
			add(g.Name, kindOf(r.State), "%s %s", g.Name, stateText(prev.State, r.State))
		}
		switch {
		case !had || r.Lost <= prev.Lost:
		case r.State == "left":
			add(g.Name, "lost", "%d sessions still bound to %s are lost: it left the pool (%d in all)", r.Lost-prev.Lost, g.Name, r.Lost)
		default:
			add(g.Name, "lost", "%d sessions lost with %s (%d in all)", r.Lost-prev.Lost, g.Name, r.Lost)
		}
		d.rows[g.Name] = r
		pt.Rate[g.Name] = r.Rate
		if r.P99 >= 0 {
			pt.P99[g.Name] = r.P99
		}
	}
	for name, r := range d.rows {
		if seen[name] {
			continue
		}
		if r.State != "left" {
			add(name, "leave", "%s left the pool", name)
			r.State, r.Rate, r.P99, r.InFlight, r.Sessions = "left", 0, -1, 0, 0
			d.rows[name] = r
			d.gone[name] = now
		}
		if now.Sub(d.gone[name]) > goneShown {
			delete(d.rows, name)
			delete(d.gone, name)
		}
	}
	if v.Stats.Panic != d.panicked {
		d.panicked = v.Stats.Panic
		if d.panicked {
			add("", "panic", "panic mode: too few healthy gateways, calls spread over every connected one")
		} else {
			add("", "panic", "panic mode over")
		}
	}
	if len(d.events) > maxTimeline {
		d.events = d.events[len(d.events)-maxTimeline:]
	}
	d.history = append(d.history, pt)
	if n := int(dashboardHistory / d.every); len(d.history) > n {
		d.history = d.history[len(d.history)-n:]
	}
	msg := &feedMsg{Type: "tick", T: pt.T, Rows: d.sortedRows(), Point: pt, Events: fresh, Stats: v.Stats,
		Interval: d.every.Milliseconds()}
	d.last = msg
	b := encodeEvent(msg)
	for ch := range d.feeds {
		select {
		case ch <- b:
		default: // a browser that does not keep up misses a sample
		}
	}
}

// row computes a gateway's row from the samples (the caller holds d.mu and
// has appended the newest).
func (d *dashboard) row(g balancer.GatewayView, now time.Time) Row {
	r := Row{Name: g.Name, State: displayState(g), InFlight: g.InFlight, Sessions: g.Sessions, Lost: g.SessionsLost,
		Ejected: g.Ejections, Breaker: g.Breaker, P99: -1}
	// Rates over rateWindow: from the oldest sample within it.
	var base *balancer.GatewayView
	var baseAt time.Time
	var p99base *balancer.GatewayView
	for i := range d.samples[:len(d.samples)-1] {
		s := &d.samples[i]
		for j := range s.v.Gateways {
			if s.v.Gateways[j].Name != g.Name {
				continue
			}
			if p99base == nil {
				p99base = &s.v.Gateways[j]
			}
			if base == nil && now.Sub(s.at) <= rateWindow+d.every/2 {
				base, baseAt = &s.v.Gateways[j], s.at
			}
		}
	}
	if base != nil && now.After(baseAt) && g.Calls >= base.Calls {
		dt := now.Sub(baseAt).Seconds()
		r.Rate = float64(g.Calls-base.Calls) / dt
		r.Errors = float64(g.Errors-base.Errors) / dt
	}
	if p99base != nil {
		r.P99 = p99(g.Latency, p99base.Latency)
	}
	if r.State == "down" || r.State == "left" {
		// What it answered before it died is history (the charts have
		// it): a dead gateway's row must not show calls flowing.
		r.Rate, r.Errors, r.P99 = 0, 0, -1
	}
	return r
}

// p99 returns the 99th percentile in milliseconds of the calls counted in
// cur and not in prev (bucket counts of balancer.LatencyBounds), by linear
// interpolation within its bucket; -1 when there are none.
func p99(cur, prev []uint64) float64 {
	if len(cur) != len(prev) {
		return -1
	}
	var total uint64
	delta := make([]uint64, len(cur))
	for i := range cur {
		if cur[i] >= prev[i] {
			delta[i] = cur[i] - prev[i]
		}
		total += delta[i]
	}
	if total == 0 {
		return -1
	}
	rank := 0.99 * float64(total)
	var cum float64
	lower := 0.0
	for i, n := range delta {
		upper := lower * 2
		if i < len(balancer.LatencyBounds) {
			upper = float64(balancer.LatencyBounds[i]) / 1e6
		}
		if cum+float64(n) >= rank && n > 0 {
			return lower + (upper-lower)*(rank-cum)/float64(n)
		}
		cum += float64(n)
		lower = upper
	}
	return lower
}

// displayState is the one word a person reads for a gateway.
func displayState(g balancer.GatewayView) string {
	switch {
	case g.State == "left":
		return "left"
	case g.State == "down":
		return "down"
	case g.Check == "down":
		return "check failing"
	case g.Ejected:
		return "ejected"
	case g.Breaker == "open":
		return "breaker open"
	case g.State == "draining":
		return "draining"
	case g.AdminDrain:
		return "drained"
	case g.Breaker == "half-open":
		return "half-open"
	}
	return "up"
}

func kindOf(state string) string {
	switch state {
	case "down":
		return "down"
	case "up":
		return "up"
	case "check failing":
		return "check"
	case "ejected":
		return "eject"
	case "breaker open", "half-open":
		return "breaker"
	}
	return "drain"
}

// stateText says what a change of displayed state means.
func stateText(from, to string) string {
	switch to {
	case "down":
		return "is DOWN: its connections broke and it refuses new ones (killed or crashed)"
	case "check failing":
		return "fails its health checks (PING unanswered): no new work"
	case "ejected":
		return "ejected by outlier detection (too many failed calls)"
	case "breaker open":
		return "circuit breaker opened: calls go elsewhere"
	case "half-open":
		return "circuit breaker half-open: probing"
	case "draining":
		return "is draining (GOAWAY): no new sessions, its sessions finish there"
	case "drained":
		return "drained by an operator: no new sessions"
	case "up":
		return "is up again (was " + from + ")"
	}
	return "is " + to
}

func (d *dashboard) sortedRows() []Row {
	out := make([]Row, 0, len(d.rows))
	for _, r := range d.rows {
		out = append(out, r)
	}
	sortRows(out)
	return out
}

func encodeEvent(m *feedMsg) []byte {
	b, _ := json.Marshal(m)
	out := make([]byte, 0, len(b)+8)
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, '\n', '\n')
}

// serveFeed streams the dashboard's samples to one browser until it goes
// away or the server closes.
func (d *dashboard) serveFeed(ctx *fasthttp.RequestCtx, closing <-chan struct{}) {
	ch := make(chan []byte, 4)
	d.mu.Lock()
	if len(d.feeds) >= maxFeeds {
		d.mu.Unlock()
		ctx.Error("too many dashboards watching", fasthttp.StatusServiceUnavailable)
		return
	}
	d.feeds[ch] = struct{}{}
	init := feedMsg{Type: "init", Interval: d.every.Milliseconds(), History: append([]point(nil), d.history...),
		Events: append([]Event(nil), d.events...)}
	if d.last != nil {
		init.T, init.Rows, init.Point, init.Stats = d.last.T, d.last.Rows, d.last.Point, d.last.Stats
	}
	d.mu.Unlock()
	conn := ctx.Conn()
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			d.mu.Lock()
			delete(d.feeds, ch)
			d.mu.Unlock()
		}()
		send := func(b []byte) bool {
			_ = conn.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
			if _, err := w.Write(b); err != nil {
				return false
			}
			return w.Flush() == nil
		}
		if !send([]byte("retry: 1000\n\n")) || !send(encodeEvent(&init)) {
			return
		}
		keepalive := time.NewTicker(15 * time.Second)
		defer keepalive.Stop()
		for {
			select {
			case <-closing:
				return
			case b := <-ch:
				if !send(b) {
					return
				}
			case <-keepalive.C:
				if !send([]byte(": keepalive\n\n")) {
					return
				}
			}
		}
	})
}

// sortRows orders rows by name, numbers within names by value (gw2 before
// gw10).
func sortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int { return compareNames(a.Name, b.Name) })
}

// compareNames compares names with their digit runs taken as numbers.
func compareNames(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
