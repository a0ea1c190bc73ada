package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/memberlist"
)

// MaxMetaSize is memberlist's limit on node metadata (memberlist.MetaMaxSize,
// 512 bytes). memberlist panics on larger metadata, so EncodeMeta refuses it.
//
// Budget of a typical gateway, in bytes: format 1, role 3, instance 10,
// weight 0 (omitted when 1) or 4, state 0 (omitted when ready) or 3, zone
// 2+len, each address 2+len (IPv4 host:port ≤ 21, IPv6 ≤ 47), each module
// 2+len, TLS 0 (plain) or 3. Three IPv4 addresses and a short zone take about 90 bytes, which
// leaves room for about 40 modules of 8 characters ("orders@1").
const MaxMetaSize = memberlist.MetaMaxSize

// MetaVersion is the metadata format this package writes.
//
// Format: one version byte, then fields as tag (1 byte), length (1 byte),
// value. Decoders skip tags they do not know, so a newer node adds a field
// under a new tag and older nodes ignore it; a tag's meaning never changes.
// Versions 1 to 127 share this framing and the version is informational;
// a framing that old decoders cannot skip through must use 128 or more,
// which DecodeMeta rejects.
const MetaVersion = 1

const maxCompatibleMetaVersion = 127

// Metadata field tags. Zero is never a tag.
const (
	tagRole     = 1  // 1 byte
	tagState    = 2  // 1 byte; absent means ready
	tagWeight   = 3  // uvarint; absent means DefaultWeight
	tagInstance = 4  // 8 bytes big-endian
	tagZone     = 5  // string
	tagTCP      = 6  // host:port
	tagWS       = 7  // host:port
	tagHTTP     = 8  // host:port
	tagModule   = 9  // string; repeated, one per module
	tagTLS      = 10 // 1 byte, 1: the TCP and WS listeners speak TLS; absent means plain
)

// ErrMetaTooLarge is matched (errors.Is) by the error of EncodeMeta and
// Config.Validate when a member does not fit in MaxMetaSize bytes.
var ErrMetaTooLarge = errors.New("discovery: node metadata too large")

// metaSizeError says by how much metadata is too large and what to shorten.
type metaSizeError struct{ size, modules, moduleBytes int }

func (e *metaSizeError) Error() string {
	return fmt.Sprintf("%d bytes, over memberlist's %d-byte metadata limit (%d modules take %d); shorten the module list or the addresses",
		e.size, MaxMetaSize, e.modules, e.moduleBytes)
}

func (e *metaSizeError) Is(target error) bool { return target == ErrMetaTooLarge }

// EncodeMeta encodes the parts of m that travel as memberlist node
// metadata: everything except Name and Addrs.Gossip, which memberlist
// carries itself. Modules are sorted and deduplicated. It fails if m is
// invalid or its encoding exceeds MaxMetaSize (ErrMetaTooLarge).
func EncodeMeta(m Member) ([]byte, error) {
	b, err := encodeMeta(m)
	if err != nil {
		return nil, fmt.Errorf("discovery: encode metadata: %w", err)
	}
	return b, nil
}

// encodeMeta is EncodeMeta with errors that name no package, for callers
// that add their own context.
func encodeMeta(m Member) ([]byte, error) {
	m = m.normalized()
	if err := validateMeta(m); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 128)
	b = append(b, MetaVersion)
	b = append(b, tagRole, 1, byte(m.Role))
	if m.State != StateReady {
		b = append(b, tagState, 1, byte(m.State))
	}
	if m.Weight != DefaultWeight {
		var w [binary.MaxVarintLen64]byte
		n := binary.PutUvarint(w[:], uint64(m.Weight))
		b = append(b, tagWeight, byte(n))
		b = append(b, w[:n]...)
	}
	if m.Instance != 0 {
		b = append(b, tagInstance, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Instance))
	}
	b = appendString(b, tagZone, m.Zone)
	b = appendString(b, tagTCP, m.Addrs.TCP)
	b = appendString(b, tagWS, m.Addrs.WS)
	b = appendString(b, tagHTTP, m.Addrs.HTTP)
	if m.Addrs.TLS {
		b = append(b, tagTLS, 1, 1)
	}
	modBytes := 0
	for _, mod := range m.Modules {
		b = appendString(b, tagModule, mod)
		modBytes += 2 + len(mod)
	}
	if len(b) > MaxMetaSize {
		return nil, &metaSizeError{size: len(b), modules: len(m.Modules), moduleBytes: modBytes}
	}
	return b, nil
}

func appendString(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, tag, byte(len(s)))
	return append(b, s...)
}

// DecodeMeta decodes metadata written by EncodeMeta of this or a newer
// version. Name and Addrs.Gossip are left empty. Unknown tags are skipped;
// a known tag with a malformed value, a truncated field or an input over
// MaxMetaSize is an error. It never panics, whatever b holds, and does not
// keep b.
func DecodeMeta(b []byte) (Member, error) {
	m, err := decodeMeta(b)
	if err != nil {
		return Member{}, fmt.Errorf("discovery: decode metadata: %w", err)
	}
	return m, nil
}

func decodeMeta(b []byte) (Member, error) {
	var m Member
	if len(b) == 0 {
		return m, errors.New("empty")
	}
	if len(b) > MaxMetaSize {
		return m, fmt.Errorf("%d bytes, over %d", len(b), MaxMetaSize)
	}
	if v := b[0]; v == 0 || v > maxCompatibleMetaVersion {
		return m, fmt.Errorf("unsupported format version %d", v)
	}
	m.Weight = DefaultWeight
	for p := 1; p < len(b); {
		if len(b)-p < 2 {
			return Member{}, fmt.Errorf("truncated field header at byte %d", p)
		}
		tag, n := b[p], int(b[p+1])
		p += 2
		if len(b)-p < n {
			return Member{}, fmt.Errorf("field %d wants %d bytes, %d left", tag, n, len(b)-p)
		}
		v := b[p : p+n]
		p += n
		if err := decodeField(&m, tag, v); err != nil {
			return Member{}, fmt.Errorf("field %d: %w", tag, err)
		}
	}
	m = m.normalized()
	if err := validateMeta(m); err != nil {
		return Member{}, err
	}
	return m, nil
}

func decodeField(m *Member, tag byte, v []byte) error {
	switch tag {
	case tagRole, tagState, tagTLS:
		if len(v) != 1 {
			return fmt.Errorf("length %d, want 1", len(v))
		}
		switch tag {
		case tagRole:
			m.Role = Role(v[0])
		case tagState:
			m.State = State(v[0])
		default:
			m.Addrs.TLS = v[0] == 1
		}
	case tagWeight:
		w, n := binary.Uvarint(v)
		if n != len(v) || w == 0 || w > MaxWeight {
			return errors.New("bad weight")
		}
		m.Weight = int(w)
	case tagInstance:
		if len(v) != 8 {
			return fmt.Errorf("length %d, want 8", len(v))
		}
		m.Instance = InstanceID(binary.BigEndian.Uint64(v))
	case tagZone:
		m.Zone = string(v)
	case tagTCP:
		m.Addrs.TCP = string(v)
	case tagWS:
		m.Addrs.WS = string(v)
	case tagHTTP:
		m.Addrs.HTTP = string(v)
	case tagModule:
		m.Modules = append(m.Modules, string(v))
	}
	return nil
}

// validateMeta checks what both EncodeMeta and DecodeMeta require of a
// normalized member, so that whatever decodes also encodes.
func validateMeta(m Member) error {
	if m.Role == 0 {
		return errors.New("role is not set")
	}
	if m.Weight < 1 || m.Weight > MaxWeight {
		return fmt.Errorf("weight %d out of range 1..%d", m.Weight, MaxWeight)
	}
	if len(m.Zone) > 255 {
		return fmt.Errorf("zone is %d bytes, over 255", len(m.Zone))
	}
	for _, a := range []struct{ field, addr string }{{"tcp", m.Addrs.TCP}, {"ws", m.Addrs.WS}, {"http", m.Addrs.HTTP}} {
		if err := checkHostPort(a.addr); err != nil {
			return fmt.Errorf("%s address %q: %w", a.field, a.addr, err)
		}
	}
	for _, mod := range m.Modules {
		if mod == "" || len(mod) > 255 {
			return fmt.Errorf("module name %q must be 1 to 255 bytes", mod)
		}
	}
	return nil
}

// checkHostPort accepts "" or a host:port of at most 255 bytes.
func checkHostPort(a string) error {
	if a == "" {
		return nil
	}
	if len(a) > 255 {
		return fmt.Errorf("%d bytes, over 255", len(a))
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return err
	}
	return nil
}
