package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an in-process nats-server.
type EmbeddedConfig struct {
	// Addr is host:port to listen on (default 127.0.0.1:0, a free port).
	Addr string
	// StoreDir is where JetStream keeps durable calls (default: a new
	// temporary directory, removed by Shutdown: durable calls then survive
	// restarts of the gateways but not of the server).
	StoreDir string
	// MaxPayload is the largest message the server accepts (default
	// 1 MiB + 4 KiB: a frame at the protocol's default limit, and headers).
	MaxPayload int32
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	srv     *server.Server
	tempDir string
}

// StartEmbedded starts a nats-server in this process and waits until it
// accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: nats listen address %q: %w", cfg.Addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("transport: nats listen address %q: bad port", cfg.Addr)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	e := &Embedded{}
	if cfg.StoreDir == "" {
		if e.tempDir, err = os.MkdirTemp("", "graftlb-nats-"); err != nil {
			return nil, fmt.Errorf("transport: nats store: %w", err)
		}
		cfg.StoreDir = e.tempDir
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 1<<20 + 4<<10
	}
	opts := &server.Options{
		ServerName: "graftlb",
		Host:       host,
		Port:       p,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
		// The HTTP monitor, cluster and leaf listeners stay off.
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.removeTemp()
		return nil, fmt.Errorf("transport: nats server: %w", err)
	}
	e.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.Shutdown()
		return nil, errors.New("transport: nats server did not start within 10s")
	}
	return e, nil
}

// URL is the nats:// URL clients connect to.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server, waits until its goroutines ended, and removes
// a temporary store.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.removeTemp()
}

func (e *Embedded) removeTemp() {
	if e.tempDir != "" {
		_ = os.RemoveAll(e.tempDir)
	}
}
