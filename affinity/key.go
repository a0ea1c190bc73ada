package affinity

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// KeyKind says where pass-through mode finds a connection's affinity key.
type KeyKind uint8

// Key kinds. The zero value is KeyAddr, so an unset key source means "client
// address".
const (
	// KeyAddr is the client's IP address, without the port, so that one
	// client's reconnects from new ports stay together. It is the only kind
	// that works for raw TCP pass-through.
	KeyAddr KeyKind = iota
	// KeyQuery is a query parameter of the WebSocket upgrade request.
	KeyQuery
	// KeyHeader is a header of the upgrade request (the first one, if
	// repeated). Browsers cannot set custom headers on a WebSocket handshake.
	KeyHeader
	// KeyCookie is a cookie of the upgrade request.
	KeyCookie
)

var kindNames = [...]string{KeyAddr: "addr", KeyQuery: "query", KeyHeader: "header", KeyCookie: "cookie"}

// String returns the kind as written in a key source: addr, query, header or
// cookie.
func (k KeyKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("KeyKind(%d)", uint8(k))
}

// KeySource says which part of an incoming connection is its affinity key in
// pass-through mode, where graftlb balances whole WebSocket or TCP connections
// to real gateways. The zero value is the client address.
//
// Its text form, accepted by ParseKeySource and UnmarshalText (so it works as
// a YAML or JSON string), is one of:
//
//	query:NAME    query parameter NAME of the upgrade request, e.g. query:session
//	header:NAME   request header NAME, case-insensitive, e.g. header:X-Session
//	cookie:NAME   cookie NAME, e.g. cookie:sid
//	addr          the client's IP address (the port is ignored)
//
// The kind is lowercase. A header or cookie name must be an HTTP token
// (RFC 9110 §5.6.2); a query parameter name is compared with the decoded
// parameter name and may be any non-empty text without control characters.
// The empty string means addr.
type KeySource struct {
	// Kind is where the key is found; the zero value is KeyAddr.
	Kind KeyKind
	// Name is the parameter, header or cookie name; empty for KeyAddr.
	Name string
}

// ParseKeySource parses the text form of a KeySource (see KeySource). Errors
// start with "affinity: key source" and name the part that is wrong, kind or
// name; callers add the config field.
func ParseKeySource(s string) (KeySource, error) {
	if s == "" {
		return KeySource{}, nil
	}
	kind, name, hasName := strings.Cut(s, ":")
	var k KeySource
	switch kind {
	case "addr":
		if hasName {
			return KeySource{}, fmt.Errorf("affinity: key source %q: name: addr takes none", s)
		}
		return KeySource{Kind: KeyAddr}, nil
	case "query":
		k.Kind = KeyQuery
	case "header":
		k.Kind = KeyHeader
	case "cookie":
		k.Kind = KeyCookie
	default:
		return KeySource{}, fmt.Errorf("affinity: key source %q: kind: %q is not one of query, header, cookie, addr", s, kind)
	}
	k.Name = name
	if err := k.validateName(); err != nil {
		return KeySource{}, fmt.Errorf("affinity: key source %q: %w", s, err)
	}
	return k, nil
}

// Validate reports whether k is well formed, for a KeySource built in code
// rather than parsed.
func (k KeySource) Validate() error {
	if k.Kind > KeyCookie {
		return fmt.Errorf("affinity: key source %q: kind: unknown", k.String())
	}
	if err := k.validateName(); err != nil {
		return fmt.Errorf("affinity: key source %q: %w", k.String(), err)
	}
	return nil
}

// ValidateTCP is Validate for TCP pass-through, where there is no HTTP
// request to read a query parameter, header or cookie from: only addr is
// allowed.
func (k KeySource) ValidateTCP() error {
	if err := k.Validate(); err != nil {
		return err
	}
	if k.Kind != KeyAddr {
		return fmt.Errorf("affinity: key source %q: kind: TCP pass-through has no HTTP request, only addr is allowed", k.String())
	}
	return nil
}

func (k KeySource) validateName() error {
	if k.Kind == KeyAddr {
		if k.Name != "" {
			return fmt.Errorf("name: addr takes none, got %q", k.Name)
		}
		return nil
	}
	if k.Name == "" {
		return fmt.Errorf("name: empty, want %s:NAME", k.Kind)
	}
	for i := 0; i < len(k.Name); i++ {
		c := k.Name[i]
		if k.Kind == KeyQuery {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("name: control character at byte %d", i)
			}
		} else if !isTokenChar(c) {
			return fmt.Errorf("name: %q is not an HTTP token (byte %d)", k.Name, i)
		}
	}
	return nil
}

// isTokenChar reports whether c is a tchar of RFC 9110 §5.6.2.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// String returns the text form of k, as ParseKeySource accepts it.
func (k KeySource) String() string {
	if k.Kind == KeyAddr && k.Name == "" {
		return "addr"
	}
	return k.Kind.String() + ":" + k.Name
}

// MarshalText returns the text form of k.
func (k KeySource) MarshalText() ([]byte, error) {
	return []byte(k.String()), nil
}

// UnmarshalText parses the text form of a key source into k.
func (k *KeySource) UnmarshalText(b []byte) error {
	v, err := ParseKeySource(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// Extract appends the affinity key of a connection to dst and returns it;
// hash it with HashKey. h and uri are the upgrade request's header and parsed
// URI (ctx.Request.Header and ctx.URI() in a fasthttp handler); remote is the
// client's address (ctx.RemoteAddr(), or the accepted net.Conn's RemoteAddr
// for TCP). h and uri may be nil when there is no HTTP request.
//
// When the configured query parameter, header or cookie is absent or empty,
// Extract falls back to the client address and reports fallback = true, so
// the balancer can count it. That keeps a client without the key on one
// gateway across reconnects and agrees across proxies, where HAProxy's
// balance hdr() and url_param, and NGINX's hash with an empty key, fall back
// to round robin instead.
//
// A client address is the IP in text form ("192.0.2.7", "2001:db8::1"),
// without port or zone; IPv4-mapped IPv6 addresses become IPv4. An address
// that is not an IP (a Unix socket, net.Pipe) is used whole as text; a nil
// address gives an empty key.
//
// Extract does not allocate when dst has room and remote is a *net.TCPAddr,
// *net.UDPAddr or *net.IPAddr. Like every fasthttp lookup it uses h's and
// uri's scratch buffers, so it must not run concurrently with other uses of
// the request.
func (k KeySource) Extract(dst []byte, h *fasthttp.RequestHeader, uri *fasthttp.URI, remote net.Addr) (key []byte, fallback bool) {
	var v []byte
	switch k.Kind {
	case KeyAddr:
		return appendAddr(dst, remote), false
	case KeyQuery:
		if uri != nil {
			v = uri.QueryArgs().Peek(k.Name)
		}
	case KeyHeader:
		if h != nil {
			v = h.Peek(k.Name)
		}
	case KeyCookie:
		if h != nil {
			v = h.Cookie(k.Name)
		}
	}
	if len(v) == 0 {
		return appendAddr(dst, remote), true
	}
	return append(dst, v...), false
}

// appendAddr appends the IP of remote in text form, without port or zone.
func appendAddr(dst []byte, remote net.Addr) []byte {
	var ip net.IP
	switch a := remote.(type) {
	case nil:
		return dst
	case *net.TCPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.UDPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.IPAddr:
		if a != nil {
			ip = a.IP
		}
	default:
		s := a.String()
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone("").AppendTo(dst)
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			return ip.Unmap().WithZone("").AppendTo(dst)
		}
		return append(dst, s...)
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return dst
	}
	return addr.Unmap().AppendTo(dst)
}
