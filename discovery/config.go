package discovery

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/clock"
)

// KeyEnv is the environment variable DefaultConfig reads the gossip key
// from, so that the key need not appear on a command line.
const KeyEnv = "GRAFTLB_GOSSIP_KEY"

// DefaultLabel is the default cluster label.
const DefaultLabel = "graftlb"

// Defaults of Config's timing fields.
const (
	DefaultRejoinAfter      = 2 * time.Second
	DefaultRejoinInterval   = 3 * time.Second
	DefaultJoinRetry        = 2 * time.Second
	DefaultBroadcastTimeout = 3 * time.Second
	// deadNodeReclaimTime lets a restarted node whose old incarnation was
	// declared dead rejoin under its name from another port (port 0)
	// instead of being refused as a conflict until memberlist forgets the
	// dead node (GossipToTheDeadTime, 30 s).
	deadNodeReclaimTime = time.Second
)

// Config configures a Gossip member. The zero value of a field means its
// default unless the field says otherwise; Validate checks a config after
// defaults are applied. A Config is copied by NewGossip and not used after.
type Config struct {
	// Local describes this node. Name is the memberlist node name, unique
	// in the cluster (default: the hostname). Role is required. Addrs.Gossip
	// is ignored (filled in from the bound address). Instance zero means a
	// random id drawn at NewGossip; tests may fix it.
	Local Member `json:"local"`
	// BindAddr is the gossip listener, HOST:PORT (TCP and UDP on the same
	// port). HOST may be a name, resolved once by NewGossip (IPv4 first).
	// Port 0 picks a free port; LocalAddr reports it. Default
	// "0.0.0.0:7946".
	BindAddr string `json:"bind_addr,omitempty"`
	// AdvertiseAddr is the address other members reach this one at, HOST
	// or HOST:PORT (the port defaults to the bound one; a port here needs
	// a fixed bind port), when it differs from BindAddr: NAT, containers,
	// a Kubernetes pod's IP. HOST may be a name: memberlist gets it
	// resolved by NewGossip, and Local's listener addresses are announced
	// with HOST as given, so that peers resolve it when they dial.
	//
	// Empty: the bound IP, or for a wildcard bind (0.0.0.0, ::) a private
	// IP of this machine (the one memberlist would pick, else the first
	// non-loopback address); NewGossip fails, naming the advertise
	// address, when there is none. Local's listener addresses on a
	// wildcard host are announced with that IP, since a peer dialing
	// [::]:8990 reaches itself; with AdvertiseAddr set, all of them are.
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
	// Join lists seed members, host:port. Start contacts them, retries
	// every JoinRetry until one answers, then joins them once more after
	// RejoinAfter (see the package doc). Empty: this node waits to be
	// joined.
	Join []string `json:"join,omitempty"`
	// Key is the gossip encryption key, base64 of 16, 24 or 32 bytes
	// (AES-128/192/256-GCM). Empty disables encryption, which Start logs
	// as a warning. DefaultConfig reads it from GRAFTLB_GOSSIP_KEY.
	Key string `json:"-"`
	// Label is memberlist's cluster label: nodes with another label are
	// refused. Default "graftlb"; at most 255 bytes.
	Label string `json:"label,omitempty"`
	// RejoinAfter is the delay of the one re-join of the seeds after the
	// first successful join. Default 2s; negative disables the re-join.
	RejoinAfter time.Duration `json:"rejoin_after,omitempty"`
	// RejoinInterval is how often, after the re-join, a member joins one
	// address of its seeds again (a push/pull of the member lists over
	// TCP), so that a member the others declared dead, or that declared
	// them dead, finds the cluster again within about RejoinInterval of
	// the network healing. It costs one push/pull per member per interval.
	// Default 3s; negative disables it.
	RejoinInterval time.Duration `json:"rejoin_interval,omitempty"`
	// JoinRetry is the delay between join attempts while no seed has
	// answered, and between the re-joins that settle a conflict on this
	// node's name (see Gossip.Start). Default 2s.
	JoinRetry time.Duration `json:"join_retry,omitempty"`
	// BroadcastTimeout bounds how long SetState waits for its update to be
	// sent to at least one member. Default 3s.
	BroadcastTimeout time.Duration `json:"broadcast_timeout,omitempty"`
	// Logger receives this package's logs and memberlist's own, mapped to
	// levels (see logging.go). Default: no logs.
	Logger *zerolog.Logger `json:"-"`
	// Clock drives the join retry and re-join timers. Default clock.Real.
	// memberlist's own timers always run on the wall clock.
	Clock clock.Clock `json:"-"`
	// Tune, if set, is applied last to the memberlist config built from
	// memberlist.DefaultLANConfig, for tests and experiments. It must not
	// set Delegate, Events, Conflict, Logger, LogOutput, Name, Label or
	// the key.
	Tune func(*memberlist.Config) `json:"-"`
}

// DefaultConfig returns a config with every default set, Key read from
// the GRAFTLB_GOSSIP_KEY environment variable and Local a ready gateway
// named after the host. Callers set Local.Role, Local.Addrs and Join.
func DefaultConfig() Config {
	hostname, _ := os.Hostname()
	c := Config{
		Local: Member{Name: hostname, Role: RoleGateway, Weight: DefaultWeight},
		Key:   os.Getenv(KeyEnv),
	}
	return c.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Local.Name == "" {
		c.Local.Name, _ = os.Hostname()
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0:7946"
	}
	if c.Label == "" {
		c.Label = DefaultLabel
	}
	if c.RejoinAfter == 0 {
		c.RejoinAfter = DefaultRejoinAfter
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.JoinRetry == 0 {
		c.JoinRetry = DefaultJoinRetry
	}
	if c.BroadcastTimeout == 0 {
		c.BroadcastTimeout = DefaultBroadcastTimeout
	}
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// Validate applies the defaults and reports every invalid field, each
// prefixed with its name.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Local.Name == "" {
		errs = append(errs, errors.New("discovery: local.name: empty and the hostname is unknown"))
	}
	if _, err := encodeMeta(c.Local); err != nil {
		errs = append(errs, fmt.Errorf("discovery: local: %w", err))
	}
	if err := checkAddr(c.BindAddr, false); err != nil {
		errs = append(errs, fmt.Errorf("discovery: bind_addr: %w", err))
	}
	if c.AdvertiseAddr != "" {
		if err := checkAddr(c.AdvertiseAddr, true); err != nil {
			errs = append(errs, fmt.Errorf("discovery: advertise_addr: %w", err))
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("discovery: join %q: %w", j, err))
		}
	}
	if _, err := ParseKey(c.Key); err != nil {
		errs = append(errs, err)
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		errs = append(errs, fmt.Errorf("discovery: label: %d bytes, over %d", len(c.Label), memberlist.LabelMaxSize))
	}
	if c.JoinRetry < 0 {
		errs = append(errs, fmt.Errorf("discovery: join_retry: %v is negative", c.JoinRetry))
	}
	if c.BroadcastTimeout < 0 {
		errs = append(errs, fmt.Errorf("discovery: broadcast_timeout: %v is negative", c.BroadcastTimeout))
	}
	return errors.Join(errs...)
}

// ParseKey decodes a base64 (standard, padded) gossip key of 16, 24 or 32
// bytes. An empty string is no key: it returns nil and no error.
func ParseKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("discovery: gossip key is not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("discovery: gossip key is %d bytes, want 16, 24 or 32", len(k))
}

// checkAddr checks HOST:PORT (port 0 to 65535) or, for an advertise
// address, HOST[:PORT] (port 1 to 65535). HOST is an IP or a name that
// is valid in DNS; nothing is looked up here.
func checkAddr(a string, advertise bool) error {
	host, ps, err := net.SplitHostPort(a)
	if err != nil {
		if !advertise {
			return err
		}
		host, ps = a, ""
		if len(a) > 1 && a[0] == '[' && a[len(a)-1] == ']' {
			host = a[1 : len(a)-1]
		}
	}
	if ps != "" || !advertise {
		port, err := strconv.Atoi(ps)
		if err != nil || port < 0 || port > 65535 || (advertise && port == 0) {
			return fmt.Errorf("port %q: want %d to 65535", ps, map[bool]int{false: 0, true: 1}[advertise])
		}
	}
	if host == "" {
		if advertise {
			return errors.New("empty host")
		}
		return nil
	}
	if net.ParseIP(host) == nil && !validName(host) {
		return fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	return nil
}

// validName reports whether s is a syntactically valid DNS name: labels
// of 1 to 63 letters, digits, hyphens and underscores, 253 bytes at most.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// memberlistConfig builds memberlist's config from c (with defaults
// applied and validated): the LAN profile, unchanged in its
// timing; see the package doc.
func (c Config) memberlistConfig(adv advertisement, key []byte, d *delegate, logger zerolog.Logger) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Local.Name
	mc.BindAddr, mc.BindPort = adv.bindIP.String(), adv.port
	// memberlist replaces the advertise port with the bound one when it
	// picks the port itself (BindPort 0).
	mc.AdvertiseAddr, mc.AdvertisePort = adv.ip.String(), adv.port
	if adv.aport != 0 {
		mc.AdvertisePort = adv.aport
	}
	mc.Label = c.Label
	mc.SecretKey = key
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.Logger = newMemberlistLogger(logger)
	if c.Tune != nil {
		c.Tune(mc)
	}
	return mc
}
