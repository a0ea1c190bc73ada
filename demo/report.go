package demo

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ANSI styles, used only when the output is a terminal.
const (
	styleBold  = "\x1b[1m"
	styleDim   = "\x1b[2m"
	styleRed   = "\x1b[31m"
	styleGreen = "\x1b[32m"
	styleCyan  = "\x1b[36m"
	styleReset = "\x1b[0m"
	clearLine  = "\r\x1b[K"
)

// printer writes the narration. With color it styles the text and keeps a
// live status line at the bottom, redrawn in place; without it the output is
// plain lines, fit for a pipe or a log. Its methods are safe for concurrent
// use.
type printer struct {
	color bool
	start time.Time

	// mu guards w and the live line.
	mu     sync.Mutex
	w      io.Writer
	liveOn bool // the live line is on screen
}

func newPrinter(w io.Writer, color bool) *printer {
	return &printer{w: w, color: color, start: time.Now()}
}

func (p *printer) style(s, st string) string {
	if !p.color || s == "" {
		return s
	}
	return st + s + styleReset
}

func (p *printer) bold(s string) string  { return p.style(s, styleBold) }
func (p *printer) dim(s string) string   { return p.style(s, styleDim) }
func (p *printer) cyan(s string) string  { return p.style(s, styleCyan) }
func (p *printer) green(s string) string { return p.style(s, styleGreen) }
func (p *printer) red(s string) string   { return p.style(s, styleRed) }

// line prints one line of narration.
func (p *printer) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.liveOn {
		fmt.Fprint(p.w, clearLine)
		p.liveOn = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// say prints an indented line of explanation.
func (p *printer) say(format string, args ...any) { p.line("  "+p.dim(format), args...) }

// event prints a timestamped event: something the demo did or saw.
func (p *printer) event(format string, args ...any) {
	p.line("  %s %s", p.cyan(fmt.Sprintf("%6.1fs", time.Since(p.start).Seconds())), fmt.Sprintf(format, args...))
}

// heading starts a step.
func (p *printer) heading(n, of int, title string) {
	p.line("")
	p.line("%s", p.bold(fmt.Sprintf("[%d/%d] %s", n, of, title)))
}

// check prints an expectation and whether it held.
func (p *printer) check(c check) {
	mark := p.green(" ok ")
	if !c.ok {
		mark = p.red("FAIL")
	}
	if c.detail != "" {
		p.line("  %s %s: %s", mark, c.name, c.detail)
	} else {
		p.line("  %s %s", mark, c.name)
	}
}

// bars prints counts per gateway as a bar chart with shares.
func (p *printer) bars(label string, m map[string]int64, names []string) {
	var total, most int64
	for _, n := range names {
		total += m[n]
		most = max(most, m[n])
	}
	p.line("  %s", label)
	fill, empty := "#", "."
	if p.color {
		fill, empty = "█", " "
	}
	for _, n := range names {
		w := 0
		if most > 0 {
			w = int(m[n] * 30 / most)
		}
		p.line("    %-5s %8s %4s  %s", n, num(m[n]), pct(m[n], total),
			p.cyan(strings.Repeat(fill, w))+strings.Repeat(empty, 30-w))
	}
}

// liveWidth keeps the live line on one row of an 80-column terminal: a
// wrapped line could not be redrawn in place.
const liveWidth = 78

// startLive shows text() as a status line: on a terminal redrawn in place
// every 250ms, otherwise printed as a progress event every 5s. The
// returned func removes it and waits for its goroutine.
func (p *printer) startLive(text func() string) (stop func()) {
	every := 5 * time.Second
	if p.color {
		every = 250 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !p.color {
					p.event("%s", text())
					continue
				}
				s := "  live: " + text()
				if r := []rune(s); len(r) > liveWidth {
					s = string(r[:liveWidth-1]) + "…"
				}
				p.mu.Lock()
				fmt.Fprint(p.w, clearLine+p.dim(s))
				p.liveOn = true
				p.mu.Unlock()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.mu.Lock()
		if p.liveOn {
			fmt.Fprint(p.w, clearLine)
			p.liveOn = false
		}
		p.mu.Unlock()
	}
}

// liveSummary is the status line of a running step.
func liveSummary(c counts, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s calls, %s failed", num(c.Calls), num(c.failedCalls()))
	if c.Started > 0 {
		fmt.Fprintf(&b, ", %s sessions ok", num(c.Verified))
	}
	b.WriteString(" |")
	var total int64
	for _, n := range names {
		total += c.ServedBy[n]
	}
	for _, n := range names {
		fmt.Fprintf(&b, " %s %s", n, pct(c.ServedBy[n], total))
	}
	return b.String()
}

// summary prints the closing tables and the verdict line, the last line of
// the output.
func (p *printer) summary(r Result, admin string) {
	var gws []string
	for _, s := range r.steps {
		for _, g := range s.Gateways {
			if !slices.Contains(gws, g) {
				gws = append(gws, g)
			}
		}
	}
	slices.SortFunc(gws, compareNames)
	p.line("")
	p.line("%s", p.bold("Summary"))
	p.line("  %-22s %8s %8s %8s  %-20s %s", "step", "calls", "calls/s", "retried", "failed calls", "sessions ok/lost/misrouted")
	for _, s := range r.steps {
		c := s.Counts
		failed := "0"
		if n := c.failedCalls(); n > 0 {
			var parts []string
			for code, v := range c.Failed {
				parts = append(parts, code+" "+num(v))
			}
			slices.Sort(parts)
			failed = strings.Join(parts, ", ")
		}
		sess := "-"
		if c.Started > 0 || c.Verified > 0 {
			sess = fmt.Sprintf("%s/%s/%s", num(c.Verified), num(c.Lost), num(c.Misrouted))
			if c.SessFailed > 0 {
				sess += fmt.Sprintf(" (+%s failed)", num(c.SessFailed))
			}
		}
		rate := int64(0)
		if s.Took > 0 {
			rate = int64(float64(c.Calls) / s.Took.Seconds())
		}
		p.line("  %-22s %8s %8s %8s  %-20s %s", fmt.Sprintf("%d %s", s.N, s.Short), num(c.Calls), num(rate),
			num(c.Retried), failed, sess)
	}
	p.line("")
	hdr := fmt.Sprintf("  %-22s", "share of calls served")
	for _, g := range gws {
		hdr += fmt.Sprintf(" %6s", g)
	}
	p.line("%s", hdr)
	for _, s := range r.steps {
		var total int64
		for _, v := range s.Counts.ServedBy {
			total += v
		}
		row := fmt.Sprintf("  %-22s", fmt.Sprintf("%d %s", s.N, s.Short))
		for _, g := range gws {
			cell := "-"
			if slices.Contains(s.Gateways, g) || s.Counts.ServedBy[g] > 0 {
				cell = pct(s.Counts.ServedBy[g], total)
			}
			row += fmt.Sprintf(" %6s", cell)
		}
		p.line("%s", row)
	}
	p.line("")
	var checks, bad int
	for _, s := range r.steps {
		for _, c := range s.Checks {
			checks++
			if !c.ok {
				bad++
				p.line("  %s step %d: %s: %s", p.red("FAIL"), s.N, c.name, c.detail)
			}
		}
	}
	p.line("  dashboard while it ran: http://%s/ (metrics /metrics, JSON /pool and /stats)", admin)
	switch {
	case r.Interrupted:
		where := "before step 1"
		if n := len(r.steps); n > 0 && r.steps[n-1].done {
			where = fmt.Sprintf("after step %d", n)
		} else if n > 0 {
			where = fmt.Sprintf("during step %d", n)
		}
		p.line("%s %s of %d (%d checks ran, %d failed); exit code %d",
			p.red("INTERRUPTED"), where, stepCount, checks, bad, ExitInterrupted)
	case !r.Passed:
		p.line("%s: %d of %d checks failed", p.red("FAIL"), bad, checks)
	default:
		p.line("%s: all %d checks of the %d steps held", p.green("PASS"), checks, stepCount)
	}
}

// num formats n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// pct formats part as a whole percentage of total.
func pct(part, total int64) string {
	if total == 0 {
		return "0%"
	}
	return strconv.FormatInt((part*100+total/2)/total, 10) + "%"
}

// compareNames orders gateway names naturally: gw2 before gw10.
func compareNames(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
