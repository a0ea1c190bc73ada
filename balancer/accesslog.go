package balancer

import (
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// The access log (Config.AccessLog) has one line per settled call, sampled
// by Config.AccessLogSample: the gateway that answered it (empty when none
// took it), the target, the kind, the outcome code, the duration at the
// proxy and the W3C trace id when the call carries a traceparent. With the
// log off, calls pay one nil check; a logged call allocates its entry.

// accessEntry is what a logged call remembers until it settles.
type accessEntry struct {
	target string // module.Type.method
	trace  string // trace id of the call's traceparent, or ""
	start  int64  // unix nanoseconds when the CALL arrived
}

// startAccess decides whether pd is logged and, if so, gives it an entry.
func (p *Proxy) startAccess(pd *call, f *protocol.Frame) {
	if s := p.conf().AccessLogSample; s < 1 && rand.Float64() >= s {
		return
	}
	pd.acc = &accessEntry{
		target: string(f.Module) + "." + string(f.TypeName) + "." + string(f.Method),
		trace:  traceID(f.Trace),
		start:  pd.start,
	}
}

// logAccess writes the access log line of a call that settled with code.
func (p *Proxy) logAccess(pd *call, code protocol.Code) {
	a := pd.acc
	gw := ""
	if pd.mc != nil {
		gw = pd.mc.gateway
	}
	ev := p.cfg.AccessLog.Info().Str("gateway", gw).Str("target", a.target).Str("kind", kindNames[kindOf(pd)]).
		Str("code", protocol.SlotLabel(protocol.CodeSlot(code))).Dur("duration_ms", time.Duration(p.now()-a.start))
	if a.trace != "" {
		ev = ev.Str("trace_id", a.trace)
	}
	ev.Msg("call")
}

// traceID returns the trace id of a W3C traceparent
// (version-traceid-parentid-flags: "00-" 32 hex "-" 16 hex "-" 2 hex), or
// "" when tp is not one.
func traceID(tp []byte) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return string(id)
}

// newTraceparent returns a fresh W3C traceparent: version 00, a random
// trace id and parent id, sampled.
func newTraceparent() []byte {
	var id [24]byte
	for i := 0; i < len(id); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	tp := make([]byte, 0, 55)
	tp = append(tp, "00-"...)
	tp = hex.AppendEncode(tp, id[:16])
	tp = append(tp, '-')
	tp = hex.AppendEncode(tp, id[16:])
	return append(tp, "-01"...)
}

// addTrace returns the CALL f (decoded from raw) encoded again with a new
// traceparent; raw itself when it cannot be.
func addTrace(f *protocol.Frame, raw []byte) []byte {
	f.Trace = newTraceparent()
	out, err := protocol.AppendFrame(make([]byte, 0, len(raw)+len(f.Trace)), f)
	if err != nil {
		f.Trace = nil
		return raw
	}
	return out
}
