package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// resolveTimeout bounds each name lookup of NewGossip.
const resolveTimeout = 5 * time.Second

// advertisement is what NewGossip settles before memberlist starts: the IP
// memberlist binds, and the host others dial, for gossip and listeners.
type advertisement struct {
	bindIP net.IP
	port   int    // bind port; 0: memberlist picks one
	host   string // host of the advertised listener addresses (name or IP)
	ip     net.IP // gossip advertise IP (host resolved)
	aport  int    // gossip advertise port; 0: the bound port
	// explicit says AdvertiseAddr was set: every listener host is
	// replaced, not only the wildcard ones.
	explicit bool
}

// advertise resolves BindAddr and AdvertiseAddr (names allowed) and picks
// what a wildcard bind advertises (see Config.AdvertiseAddr). c has been
// validated.
func (c Config) advertise() (advertisement, error) {
	var a advertisement
	host, ps, _ := net.SplitHostPort(c.BindAddr)
	a.port, _ = strconv.Atoi(ps)
	ip, err := resolveHost(host)
	if err != nil {
		return a, fmt.Errorf("discovery: bind_addr: %w", err)
	}
	a.bindIP = ip
	switch {
	case c.AdvertiseAddr != "":
		h, p := splitOptionalPort(c.AdvertiseAddr)
		aip, err := resolveHost(h)
		if err != nil {
			return a, fmt.Errorf("discovery: advertise_addr: %w", err)
		}
		if aip.IsUnspecified() {
			return a, fmt.Errorf("discovery: advertise_addr: %s is a wildcard address; others cannot dial it", h)
		}
		a.host, a.ip, a.aport, a.explicit = h, aip, p, true
	case !ip.IsUnspecified():
		a.host, a.ip = ip.String(), ip
	default:
		pip, err := privateIP()
		if err != nil {
			return a, fmt.Errorf("discovery: gossip is bound to the wildcard address %s and %v; "+
				"set the address others reach this node at (advertise_addr; graftlb --advertise)", host, err)
		}
		a.host, a.ip = pip.String(), pip
	}
	return a, nil
}

// member rewrites the hosts of m's listener addresses to the advertised
// host: every one when the advertise address was given, else only the
// wildcard ones (0.0.0.0, ::, empty), which no peer can dial: a proxy
// dialing [::]:8990 reaches itself.
func (a advertisement) member(m Member) Member {
	fix := func(addr string) string {
		if addr == "" {
			return ""
		}
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		if a.explicit || isWildcard(h) {
			return net.JoinHostPort(a.host, p)
		}
		return addr
	}
	m.Addrs.TCP, m.Addrs.WS, m.Addrs.HTTP = fix(m.Addrs.TCP), fix(m.Addrs.WS), fix(m.Addrs.HTTP)
	return m
}

func isWildcard(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

// resolveHost returns host as an IP, looking a name up (IPv4 first, as
// memberlist prefers); "" is 0.0.0.0.
func resolveHost(host string) (net.IP, error) {
	if host == "" {
		return net.IPv4zero, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip, nil
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %q: no address", host)
	}
	return ips[0], nil
}

// splitOptionalPort splits HOST or HOST:PORT (IPv6 in brackets); port 0
// means none was given.
func splitOptionalPort(a string) (string, int) {
	if h, ps, err := net.SplitHostPort(a); err == nil {
		p, _ := strconv.Atoi(ps)
		return h, p
	}
	if len(a) > 1 && a[0] == '[' && a[len(a)-1] == ']' {
		return a[1 : len(a)-1], 0
	}
	return a, 0
}

// privateIP picks the address a wildcard bind advertises: the private IP
// memberlist itself would pick (RFC 6890, on the interface of the default
// route), else the first non-loopback unicast address of any interface
// that is up.
func privateIP() (net.IP, error) {
	if s, err := sockaddr.GetPrivateIP(); err == nil && s != "" {
		if ip := net.ParseIP(s); ip != nil {
			return ip, nil
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("cannot list interfaces: %w", err)
	}
	var v6 net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				return ipn.IP, nil
			}
			if v6 == nil {
				v6 = ipn.IP
			}
		}
	}
	if v6 != nil {
		return v6, nil
	}
	return nil, errors.New("no interface has a non-loopback address")
}
