package protocol

import (
	"errors"
	"strings"
)

// Target names a method: module@version, type and method, written
// "orders@1.Orders.GetOrder". The version may itself contain dots
// ("orders@1.2.Orders.GetOrder"): type and method are the last two parts.
type Target struct {
	Module string // module@version
	Type   string
	Method string
}

// ParseTarget parses the dotted form described on Target.
func ParseTarget(s string) (Target, error) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return Target{}, errors.New("protocol: target must be module@version.Type.Method")
	}
	j := strings.LastIndexByte(s[:i], '.')
	if j <= 0 || j == i-1 {
		return Target{}, errors.New("protocol: target must be module@version.Type.Method")
	}
	t := Target{Module: s[:j], Type: s[j+1 : i], Method: s[i+1:]}
	if !strings.Contains(t.Module, "@") {
		return Target{}, errors.New("protocol: target module must be module@version")
	}
	if len(t.Module) > MaxStringLen || len(t.Type) > MaxStringLen || len(t.Method) > MaxStringLen {
		return Target{}, errors.New("protocol: target part longer than 255 bytes")
	}
	return t, nil
}

func (t Target) String() string { return t.Module + "." + t.Type + "." + t.Method }

// Reserved method names: a CALL to MethodNew creates an instance of the type
// (its RESULT carries the new object id in the header), a CALL to
// MethodRelease releases the instance named by the frame's object id.
// Method names beginning with '$' are reserved for the protocol.
const (
	MethodNew     = "$new"
	MethodRelease = "$release"
)
