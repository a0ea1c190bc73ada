package transport

import (
	"encoding/hex"
	"strings"
)

// DefaultPrefix is the first token of every subject graftlb uses.
const DefaultPrefix = "graftlb"

// Subjects names the subjects of one prefix (protocol/TRANSPORT.md,
// Subjects):
//
//	PREFIX.q.TOKEN        queue calls of a module, queue group PREFIX.q.TOKEN
//	PREFIX.f.TOKEN        fan-out calls of a module, no queue group
//	PREFIX.d.TOKEN        durable calls of a module (JetStream work queue)
//	PREFIX.s.TOKEN.ID     a delayed durable call's schedule, ID its message id
//
// TOKEN is the module@version with every byte outside [A-Za-z0-9@_-]
// written %XX (upper-case hex), so that any module name makes one valid
// subject token.
type Subjects struct{ Prefix string }

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Queue is the subject, and queue group, of module's queue calls.
func (s Subjects) Queue(module string) string { return s.prefix() + ".q." + Token(module) }

// Fanout is the subject of module's fan-out calls.
func (s Subjects) Fanout(module string) string { return s.prefix() + ".f." + Token(module) }

// Durable is the subject of module's durable calls.
func (s Subjects) Durable(module string) string { return s.prefix() + ".d." + Token(module) }

// Schedule is the subject of a delayed durable call's schedule.
func (s Subjects) Schedule(module, id string) string {
	return s.prefix() + ".s." + Token(module) + "." + id
}

// Stream is the JetStream stream holding durable calls and schedules.
func (s Subjects) Stream() string {
	return strings.ToUpper(strings.ReplaceAll(s.prefix(), ".", "_")) + "_DURABLE"
}

// Consumer is the name of the durable consumer that module's gateways
// share: "graftlb-" and the module name's hex (consumer names allow fewer
// characters than subjects).
func (s Subjects) Consumer(module string) string {
	return "graftlb-" + hex.EncodeToString([]byte(module))
}

// Token escapes module into one subject token.
func Token(module string) string {
	var b strings.Builder
	for i := 0; i < len(module); i++ {
		c := module[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '@' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		const digits = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

// streamSubjects are the subjects the durable stream holds.
func (s Subjects) streamSubjects() []string {
	return []string{s.prefix() + ".d.>", s.prefix() + ".s.>"}
}
