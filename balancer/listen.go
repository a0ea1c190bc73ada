package balancer

import "github.com/graftlb/graftlb/internal/listener"

// ProxyProtocol configures the PROXY protocol on the client listeners (see
// listener.ProxyProtocol): off by default; on, only From (default
// loopback) may send the header.
type ProxyProtocol = listener.ProxyProtocol

// Addrs are the proxy's bound listener addresses.
type Addrs = listener.Addrs
