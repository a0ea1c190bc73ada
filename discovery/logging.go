package discovery

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// memberlist logs through a *log.Logger, one Printf per event, with the
// level as a text prefix ("[ERR] memberlist: ..."). newMemberlistLogger
// turns each line into a zerolog event at the matching level, with the
// peer address ("from=IP:PORT" in memberlist's text) as a field.
//
// Refusals of a peer, which are misconfigurations of the other node rather
// than errors of this one, are logged at warn level with a reason: a wrong
// gossip key, a missing key or a wrong cluster label. memberlist logs them
// at [ERR] on the refusing node (the joining node only sees its Join fail,
// which Gossip logs itself).
func newMemberlistLogger(l zerolog.Logger) *log.Logger {
	return log.New(memberlistWriter{log: l.With().Str("component", "memberlist").Logger()}, "", 0)
}

type memberlistWriter struct{ log zerolog.Logger }

// levelPrefixes maps memberlist's level prefixes to zerolog levels.
var levelPrefixes = []struct {
	prefix string
	level  zerolog.Level
}{
	{"[ERR]", zerolog.ErrorLevel},
	{"[ERROR]", zerolog.ErrorLevel},
	{"[WARN]", zerolog.WarnLevel},
	{"[INFO]", zerolog.InfoLevel},
	{"[DEBUG]", zerolog.DebugLevel},
	{"[TRACE]", zerolog.TraceLevel},
}

// refusals maps text memberlist logs when it refuses a peer to a reason;
// the text is matched without regard to case, which memberlist has changed
// between versions.
var refusals = []struct{ text, reason string }{
	{"no installed keys could decrypt", "wrong gossip key"},
	{"decrypt packet failed", "wrong gossip key"},
	{"encryption is configured but remote state is not encrypted", "peer has no gossip key"},
	{"remote state is encrypted and encryption is not configured", "peer has a gossip key, this node has none"},
	{"unacceptable label", "wrong cluster label"},
	{"label header", "wrong cluster label"},
}

func (w memberlistWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := zerolog.InfoLevel
	for _, lp := range levelPrefixes {
		if rest, ok := strings.CutPrefix(msg, lp.prefix); ok {
			level, msg = lp.level, strings.TrimSpace(rest)
			break
		}
	}
	var peer string
	if i := strings.LastIndex(msg, "from="); i >= 0 {
		peer = strings.TrimSpace(msg[i+len("from="):])
		msg = strings.TrimRight(strings.TrimSpace(msg[:i]), ":")
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	reason := refusalReason(msg)
	if reason != "" {
		level = zerolog.WarnLevel
	}
	ev := w.log.WithLevel(level)
	if ev == nil {
		return len(p), nil
	}
	if peer != "" {
		ev = ev.Str("peer", peer)
	}
	if reason != "" {
		ev.Str("reason", reason).Str("detail", msg).Msg("discovery: refused a gossip peer")
	} else {
		ev.Msg(msg)
	}
	return len(p), nil
}

// orNop returns *l, or a logger that logs nothing when l is nil.
func orNop(l *zerolog.Logger) zerolog.Logger {
	if l == nil {
		return zerolog.Nop()
	}
	return *l
}

// refusalReason returns why memberlist refused a peer, or "" if msg is not
// a refusal.
func refusalReason(msg string) string {
	msg = strings.ToLower(msg)
	for _, r := range refusals {
		if strings.Contains(msg, r.text) {
			return r.reason
		}
	}
	return ""
}
