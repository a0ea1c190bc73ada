package main

import (
	"crypto/tls"
	"flag"

	"github.com/graftlb/graftlb/internal/tlsfiles"
)

// tlsFlags are the TLS flags of a server command: its own listeners'
// certificate (--tls-cert, --tls-key, --tls-client-ca) and whom it trusts
// when it dials: the proxy's gateways (--backend-tls-*), or the gateway's
// peers in a gossip pool (--tls-ca; the gateway presents its --tls-cert
// to them as its client certificate).
type tlsFlags struct {
	server  tlsfiles.ServerFiles
	backend tlsfiles.ClientFiles // proxy only
	peerCA  string               // gateway only
}

// register adds the listener flags, which the proxy and the gateway share.
func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.server.Cert, "tls-cert", "", "PEM certificate chain: TLS on the TCP listener (tls://) and wss:// on the WebSocket listener; reloaded when the file changes")
	fs.StringVar(&t.server.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&t.server.ClientCA, "tls-client-ca", "", "PEM CA file: clients must present a certificate from it (mTLS)")
}

// registerBackend adds the proxy's flags for its gateway connections.
func (t *tlsFlags) registerBackend(fs *flag.FlagSet) {
	fs.StringVar(&t.backend.CA, "backend-tls-ca", "", "dial every gateway with TLS, trusting this PEM CA file (without it: only tls:// and TLS-announcing gateways, trusting SSL_CERT_FILE or the system roots)")
	fs.StringVar(&t.backend.Cert, "backend-tls-cert", "", "client certificate for gateways that require one (mTLS); turns TLS on for every gateway")
	fs.StringVar(&t.backend.Key, "backend-tls-key", "", "private key of --backend-tls-cert")
}

// registerPeer adds the gateway's flag for its links to other gateways.
func (t *tlsFlags) registerPeer(fs *flag.FlagSet) {
	fs.StringVar(&t.peerCA, "tls-ca", "", "PEM CA file trusted on links to other TLS gateways of the pool (default SSL_CERT_FILE or the system roots); on those links the gateway presents its --tls-cert as its client certificate (reloaded with it), which peers started with --tls-client-ca accept only with extended key usage clientAuth")
}

// peerConfig is the gateway's client configuration for its peers.
func (t *tlsFlags) peerConfig() (*tls.Config, error) {
	if t.peerCA == "" {
		return nil, nil
	}
	return tlsfiles.ClientFiles{CA: t.peerCA}.Client()
}

// clientTLSFlags is --tls-ca of the commands that dial (call, bench).
type clientTLSFlags struct{ ca string }

func (c *clientTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.ca, "tls-ca", "", "PEM CA file trusted for tls:// and wss:// targets (default SSL_CERT_FILE or the system roots)")
}

// config is the client configuration (nil: crypto/tls's defaults).
func (c *clientTLSFlags) config() (*tls.Config, error) {
	if c.ca == "" {
		return nil, nil
	}
	return tlsfiles.ClientFiles{CA: c.ca}.Client()
}
