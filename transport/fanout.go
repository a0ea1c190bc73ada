package transport

import (
	"cmp"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/graftlb/graftlb/protocol"
)

// FanoutAnswer is one gateway's answer in a fan-out call's RESULT, whose
// body is a CBOR array of them sorted by gateway (protocol/TRANSPORT.md,
// Fan-out results): a map with "gateway" and either "result" (the CBOR
// item the gateway returned) or "error".
type FanoutAnswer struct {
	Gateway string            `cbor:"gateway" json:"gateway"`
	Result  protocol.RawValue `cbor:"result,omitempty" json:"result,omitempty"`
	Error   *FanoutError      `cbor:"error,omitempty" json:"error,omitempty"`
}

// FanoutError is a gateway's ERROR in a fan-out result: the ERROR body's
// fields, and the code's name.
type FanoutError struct {
	Code    uint16 `cbor:"code" json:"code"`
	Name    string `cbor:"name" json:"name"`
	Message string `cbor:"message" json:"message"`
	Type    string `cbor:"type,omitempty" json:"type,omitempty"`
}

// answer is one reply a fan-out call gathered.
type answer struct {
	gateway string
	a       FanoutAnswer
}

// answerOf converts a gateway's reply; an invalid one becomes an INTERNAL
// error entry of that gateway.
func answerOf(m *nats.Msg, valid bool) answer {
	gw := m.Header.Get(HeaderGateway)
	a := FanoutAnswer{Gateway: gw}
	var f protocol.Frame
	if !valid || protocol.Decode(m.Data, &f) != nil {
		a.Error = &FanoutError{Code: uint16(protocol.CodeInternal), Name: protocol.CodeInternal.String(),
			Message: "the gateway's answer is not a RESULT or ERROR frame"}
		return answer{gw, a}
	}
	if f.Type == protocol.TypeResult {
		a.Result = append(protocol.RawValue(nil), f.Body...)
		if len(a.Result) == 0 {
			a.Result = protocol.RawValue{0xf6} // null
		}
		return answer{gw, a}
	}
	pe := protocol.ErrorFromBody(f.Body)
	a.Error = &FanoutError{Code: uint16(pe.Code), Name: pe.Code.String(), Message: pe.Message, Type: pe.Type}
	return answer{gw, a}
}

// gathered is the RESULT of a fan-out call: every answer it gathered.
func gathered(c *Call, answers []answer) []byte {
	slices.SortStableFunc(answers, func(x, y answer) int { return cmp.Compare(x.gateway, y.gateway) })
	list := make([]FanoutAnswer, len(answers))
	for i := range answers {
		list[i] = answers[i].a
	}
	body, err := protocol.Marshal(list)
	if err != nil {
		return ErrorFrame(c, protocol.CodeInternal, "fan-out result cannot be encoded: "+err.Error())
	}
	return resultFrame(c, body)
}
