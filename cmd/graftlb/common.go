package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/internal/child"
	"github.com/graftlb/graftlb/protocol"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// listening is the one JSON line a long-running command prints on stdout
// at start (DESIGN.md section 6), so that scripts find port-0 listeners.
type listening = child.Listening

func printListening(w io.Writer, l listening) {
	l.Event = "listening"
	b, _ := json.Marshal(l)
	fmt.Fprintln(w, string(b))
}

// Log timestamps carry milliseconds: JSON logs in RFC 3339 with three
// fractional digits, the console format as HH:MM:SS.mmm. Whole seconds
// cannot order the events of a failover that takes a fraction of one.
const (
	logTimeFormat     = "2006-01-02T15:04:05.000Z07:00"
	consoleTimeFormat = "15:04:05.000"
)

func init() { zerolog.TimeFieldFormat = logTimeFormat }

// logFlags are the logging flags every long-running command takes.
type logFlags struct {
	level  string
	format string
	// live is the level in force (a zerolog.Level), which a reload
	// changes; out is the writer before the level filter (set by logger).
	live atomic.Int32
	out  io.Writer
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "auto", "log format on stderr: json, console, or auto (console on a terminal)")
}

func (l *logFlags) logger(stderr io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(l.level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("--log-level: %w", err)
	}
	w := stderr
	switch l.format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: consoleTimeFormat}
	case "auto":
		if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: consoleTimeFormat}
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format: want json, console or auto, got %q", l.format)
	}
	l.out = w
	l.live.Store(int32(lvl))
	// The logger logs at debug (or trace) and the filter drops what is
	// under the level in force, so that a reload can change it.
	return zerolog.New(levelFilter{w: w, min: &l.live}).Level(min(lvl, zerolog.DebugLevel)).With().Timestamp().Logger(), nil
}

// accessLogger returns the access log: info lines whatever the level in
// force (after logger).
func (l *logFlags) accessLogger() zerolog.Logger {
	return zerolog.New(l.out).Level(zerolog.InfoLevel).With().Timestamp().Str("log", "access").Logger()
}

// limitFlags are the per-connection limits a server command takes.
type limitFlags struct {
	maxFrame    int
	maxInflight int
	idle        time.Duration
	hello       time.Duration
	pending     int
	write       time.Duration
}

func (l *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.maxFrame, "max-frame", protocol.DefaultMaxFrame, "largest frame accepted, in bytes")
	fs.IntVar(&l.maxInflight, "max-inflight", protocol.DefaultMaxInflight, "calls in flight per connection")
	fs.DurationVar(&l.idle, "idle-timeout", protocol.DefaultIdleTimeout, "close connections silent this long")
	fs.DurationVar(&l.hello, "hello-timeout", protocol.DefaultHelloTimeout, "close connections that send no HELLO this long")
	fs.IntVar(&l.pending, "max-pending-write", protocol.DefaultMaxPendingWrite, "bytes queued for a peer that does not read before its connection is closed")
	fs.DurationVar(&l.write, "write-timeout", protocol.DefaultWriteTimeout, "close connections whose peer does not take a write this long")
}

func (l *limitFlags) limits() protocol.Limits {
	return protocol.Limits{MaxFrame: l.maxFrame, MaxInflight: l.maxInflight, IdleTimeout: l.idle, HelloTimeout: l.hello,
		MaxPendingWrite: l.pending, WriteTimeout: l.write}.WithDefaults()
}

// wsOriginsUsage documents --ws-allowed-origins, of the gateway and the
// proxy alike.
const wsOriginsUsage = "web page origins besides this host that may open WebSocket connections, comma-separated " +
	"patterns: https://app.example.com, https://*.example.com, http://localhost:*, or * for any " +
	"(default none: same-host pages only; requests without Origin, from clients that are not browsers, are not checked)"

// listFlag collects a repeated flag; each value may also hold a
// comma-separated list. Only for values that never contain a comma
// (host:port seeds); a backend's options are comma-separated, so backends
// take repeatFlag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Reset empties the list (flagfile.Resetter: a reload parses it again).
func (l *listFlag) Reset() { *l = nil }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// serverSignals starts catching the signals a long-running command handles,
// before it binds anything, so that a SIGTERM that arrives as soon as the
// listening line is out drains rather than kills. SIGHUP is caught too: a
// process manager sends it to ask for a reload, and it must never kill.
func serverSignals() (chan os.Signal, func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return sigs, func() { signal.Stop(sigs) }
}

// hangup reports whether sig is a SIGHUP, and if so runs the reloads:
// callers wait on.
func hangup(sig os.Signal, r *reloads) bool {
	if sig != syscall.SIGHUP {
		return false
	}
	r.run()
	return true
}

// awaitStop returns the first signal that asks the process to stop,
// running the reloads at each SIGHUP.
func awaitStop(sigs <-chan os.Signal, r *reloads) os.Signal {
	for sig := range sigs {
		if !hangup(sig, r) {
			return sig
		}
	}
	return nil
}

// repeatFlag collects a repeated flag, one value per use, commas and all:
// --backend 'tcp://host:port#name=gw1,weight=2' is one backend with two
// options.
type repeatFlag []string

func (r *repeatFlag) String() string { return strings.Join(*r, " ") }

// Reset empties the list (flagfile.Resetter: a reload parses it again).
func (r *repeatFlag) Reset() { *r = nil }

func (r *repeatFlag) Set(v string) error {
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty value")
	}
	*r = append(*r, v)
	return nil
}
