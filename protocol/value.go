package protocol

import (
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Arguments, results, event payloads and the HELLO and WELCOME bodies are
// CBOR (RFC 8949) data items. The decoder is configured for untrusted input:
// nesting, array and map sizes are bounded, duplicate map keys are refused,
// and the frame size limit bounds everything else. An integer decoded into
// an interface is an int64, or a big.Int outside int64's range (as a
// bignum is), so that whatever decodes into an interface encodes and
// decodes again: a *big.Int of 2^63 is sent as a plain integer.

// CallbackTag is the CBOR tag number that marks a callback reference in a
// CALL's arguments: tag 61000 wrapping an unsigned integer that the client
// chose to name one of its functions. The gateway invokes it with a CALLBACK
// frame whose object id is that integer.
const CallbackTag = 61000

// CallbackRef is a callback reference as it appears in arguments.
type CallbackRef uint64

// RawValue is one undecoded CBOR data item.
type RawValue = cbor.RawMessage

// Decoder limits for values from the network.
const (
	MaxValueDepth    = 32
	MaxValueElements = 1 << 16
)

var (
	valueEnc cbor.EncMode
	valueDec cbor.DecMode
)

func init() {
	tags := cbor.NewTagSet()
	if err := tags.Add(cbor.TagOptions{EncTag: cbor.EncTagRequired, DecTag: cbor.DecTagRequired},
		reflect.TypeFor[CallbackRef](), CallbackTag); err != nil {
		panic(err)
	}
	var err error
	valueEnc, err = cbor.EncOptions{Sort: cbor.SortNone}.EncModeWithTags(tags)
	if err != nil {
		panic(err)
	}
	valueDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  MaxValueDepth,
		MaxArrayElements: MaxValueElements,
		MaxMapPairs:      MaxValueElements,
		DefaultMapType:   reflect.TypeFor[map[string]any](),
		IntDec:           cbor.IntDecConvertSignedOrBigInt,
	}.DecModeWithTags(tags)
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v as one CBOR data item.
func Marshal(v any) ([]byte, error) { return valueEnc.Marshal(v) }

// MarshalArgs encodes call arguments: a CBOR array with one item per
// argument.
func MarshalArgs(args ...any) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	return valueEnc.Marshal(args)
}

// Unmarshal decodes one CBOR data item from b into v, with the limits above.
// Maps decode to map[string]any when v is an interface. b must hold exactly
// one item.
func Unmarshal(b []byte, v any) error { return valueDec.Unmarshal(b, v) }

// ValidValue reports whether b is exactly one well-formed CBOR data item
// within the decoder limits.
func ValidValue(b []byte) error { return valueDec.Wellformed(b) }
