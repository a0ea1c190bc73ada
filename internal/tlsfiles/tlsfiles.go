// Package tlsfiles is graftlb's TLS material read from PEM files: the
// server side (a certificate and key that are reloaded when their files
// change, and an optional CA that client certificates must chain to) and
// the client side (whom to trust, and an optional client certificate).
//
// A server's files are checked at most once per CheckInterval, on a
// handshake (their modification time and size); when they changed they are
// loaded again, and a pair that fails to load (a half-written file, a key
// that does not match) leaves the old pair serving, with one log line per
// failed version of the files. Reload forces a load, for a SIGHUP.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// CheckInterval is the least time between two looks at a server's
// certificate and key files.
const CheckInterval = time.Second

// ServerFiles name a server's TLS files. Cert and Key are both set (TLS
// on) or both empty (TLS off).
type ServerFiles struct {
	// Cert is the PEM certificate chain, leaf first (--tls-cert).
	Cert string `json:"cert,omitempty" yaml:"cert,omitempty"`
	// Key is the PEM private key of the leaf (--tls-key).
	Key string `json:"key,omitempty" yaml:"key,omitempty"`
	// ClientCA, when set, requires every client to present a certificate
	// that chains to one of its PEM certificates (mTLS, --tls-client-ca).
	ClientCA string `json:"client_ca,omitempty" yaml:"client_ca,omitempty"`
}

// Enabled reports whether TLS is on.
func (f ServerFiles) Enabled() bool { return f.Cert != "" || f.Key != "" }

// Validate reports an incomplete set of files (it does not read them).
func (f ServerFiles) Validate() error {
	switch {
	case f.Enabled() && (f.Cert == "" || f.Key == ""):
		return errors.New("tls: cert and key go together (--tls-cert and --tls-key)")
	case !f.Enabled() && f.ClientCA != "":
		return errors.New("tls: client_ca (--tls-client-ca) needs cert and key (--tls-cert, --tls-key)")
	}
	return nil
}

// ClientFiles name a client's TLS files; all are optional.
type ClientFiles struct {
	// CA is the PEM file of the certificates to trust (default: the file
	// SSL_CERT_FILE names, else the system's roots).
	CA string `json:"ca,omitempty" yaml:"ca,omitempty"`
	// Cert and Key are a client certificate for servers that require one
	// (mTLS); both or neither.
	Cert string `json:"cert,omitempty" yaml:"cert,omitempty"`
	Key  string `json:"key,omitempty" yaml:"key,omitempty"`
}

// Enabled reports whether any file is named.
func (f ClientFiles) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Validate reports a client certificate without its key or the reverse.
func (f ClientFiles) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("tls: client cert and key go together")
	}
	return nil
}

// Client returns a client configuration from the files: RootCAs from CA
// (nil, for crypto/tls's default of SSL_CERT_FILE or the system roots,
// when CA is empty) and the client certificate if there is one. The
// caller sets ServerName per connection (ForHost), or crypto/tls takes
// it from the address dialed.
func (f ClientFiles) Client() (*tls.Config, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pool, err := LoadPool(f.CA)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// ForHost returns a copy of conf (nil: a default client configuration)
// whose ServerName is host, unless conf names one already: the name the
// server's certificate is checked against (an IP address is checked
// against the certificate's IP addresses).
func ForHost(conf *tls.Config, host string) *tls.Config {
	if conf == nil {
		conf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c := conf.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Server serves a certificate and key from files and reloads them when
// they change. It is safe for concurrent use.
type Server struct {
	// Immutable after NewServer.
	files     ServerFiles
	clientCAs *x509.CertPool // nil: no client certificates asked
	now       func() time.Time
	log       *zerolog.Logger

	cert      atomic.Pointer[tls.Certificate] // the pair served
	nextCheck atomic.Int64                    // UnixNano: no look at the files before this

	// mu serialises looks at the files; a handshake that finds it held
	// serves the current pair rather than wait.
	mu         sync.Mutex
	loaded     stamp // the files' version that cert came from
	failed     stamp // the last version that failed to load (logged once)
	unreadable bool  // the files could not be stat'ed at the last look (logged once)
}

// stamp is a version of the certificate and key files.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewServer loads files (which must have TLS on) and returns their
// server. now is the clock of the checks (nil: the real one); reload
// failures are logged to log at error level (nil: not logged).
func NewServer(files ServerFiles, now func() time.Time, log *zerolog.Logger) (*Server, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, errors.New("tls: no certificate and key")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		nop := zerolog.Nop()
		log = &nop
	}
	s := &Server{files: files, now: now, log: log}
	if files.ClientCA != "" {
		pool, err := LoadPool(files.ClientCA)
		if err != nil {
			return nil, err
		}
		s.clientCAs = pool
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns a server configuration that serves the current pair
// (looking at the files first, at most once per CheckInterval) and, with a
// client CA, requires and verifies client certificates.
func (s *Server) Config() *tls.Config {
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
	}
	if s.clientCAs != nil {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		conf.ClientCAs = s.clientCAs
	}
	return conf
}

// Certificate returns the pair served now.
func (s *Server) Certificate() *tls.Certificate { return s.cert.Load() }

// Reload loads the files now, whether or not they look changed. On error
// the old pair stays, and the error is returned (not logged).
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextCheck.Store(s.now().Add(CheckInterval).UnixNano())
	st, err := s.stat()
	if err == nil {
		err = s.load(st)
	}
	if err != nil {
		s.failed = st
	}
	return err
}

func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.maybeReload()
	return s.cert.Load(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate that presents
// the pair this server serves, as it serves it (looking at the files
// first, at most once per CheckInterval, so that it follows their
// reloads): for a server that dials its peers with its own certificate.
// The certificate must allow client authentication (extended key usage
// clientAuth, or none) for a server that verifies it to accept it.
func (s *Server) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	s.maybeReload()
	return s.cert.Load(), nil
}

// maybeReload loads the files when CheckInterval has passed since the
// last look and their version changed. A version that fails is logged
// once and not tried again until the files change once more.
func (s *Server) maybeReload() {
	now := s.now()
	if now.UnixNano() < s.nextCheck.Load() || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	s.nextCheck.Store(now.Add(CheckInterval).UnixNano())
	st, err := s.stat()
	switch {
	case err != nil:
		if !s.unreadable {
			s.log.Error().Err(err).Msg("TLS certificate files unreadable; serving the previous certificate")
		}
		s.unreadable = true
	case st == s.loaded || st == s.failed:
		s.unreadable = false
	default:
		if err := s.load(st); err != nil {
			s.failed = st
			s.log.Error().Err(err).Msg("TLS certificate reload failed; serving the previous certificate")
			return
		}
		s.log.Info().Str("cert", s.files.Cert).Msg("TLS certificate reloaded")
	}
}

func (s *Server) stat() (stamp, error) {
	var st stamp
	ci, err := os.Stat(s.files.Cert)
	if err != nil {
		return st, fmt.Errorf("tls: cert: %w", err)
	}
	ki, err := os.Stat(s.files.Key)
	if err != nil {
		return st, fmt.Errorf("tls: key: %w", err)
	}
	return stamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}

// load reads the pair and serves it; st is the version it was stat'ed
// as. Caller must hold s.mu.
func (s *Server) load(st stamp) error {
	pair, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.cert.Store(&pair)
	s.loaded, s.failed, s.unreadable = st, stamp{}, false
	return nil
}
