package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/graftlb/graftlb/internal/child"
)

// nginxMain is the part of nginx's configuration both transports share:
// in the foreground, a master and worker_processes workers (one per core,
// as nginx's docs advise: "auto"), errors on stderr, no access log.
// %[1]s is a load_module line when the stream module is a dynamic one.
const nginxMain = `%[1]s
daemon off;
master_process on;
worker_processes %[2]d;
pid %[3]s/nginx.pid;
error_log stderr warn;

events {
    worker_connections 4096;
}
`

// nginxUpstream is the gateways, for both transports: least_conn over
// them, its state shared by the workers (zone), and max_fails=0 on each
// server (%s) so that no failure takes a gateway out (no breaker).
const nginxUpstream = `    upstream gateways {
        least_conn;
        zone gateways 64k;
%s    }
`

// nginxStream is nginx as an L4 proxy (the stream module) in front of
// nginxUpstream (%[1]s): each client connection stays on one gateway for
// its life. reuseport gives each worker a listening socket of its own, so
// the kernel spreads the connections over the workers instead of one
// worker taking most of them.
const nginxStream = `stream {
%[1]s    server {
        listen %[2]s reuseport;
        proxy_pass gateways;
        proxy_connect_timeout 2s;
        proxy_timeout 10m;
    }
}
`

// nginxWS is nginx as an HTTP proxy that passes the WebSocket upgrade on
// (https://nginx.org/en/docs/http/websocket.html: HTTP/1.1 and the
// Upgrade and Connection headers), then relays the connection as a
// tunnel; the rest as nginxStream.
const nginxWS = `http {
    access_log off;
    client_body_temp_path %[3]s/body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;

    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
%[1]s    server {
        listen %[2]s reuseport;
        location / {
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_connect_timeout 2s;
            proxy_read_timeout 10m;
            proxy_send_timeout 10m;
        }
    }
}
`

// FindNginx returns the nginx binary: path if set, else nginx on PATH,
// else in /usr/sbin or /usr/local/sbin.
func FindNginx(path string) (string, error) { return findSbin("nginx", path) }

var (
	nginxModulesPath = regexp.MustCompile(`--modules-path=(\S+)`)
	nginxStreamFlag  = regexp.MustCompile(`--with-stream(=dynamic)?(\s|$)`)
)

// nginxLoadStream returns what nginx's configuration needs for the stream
// module, from `nginx -V`: nothing when it is built in, a load_module line
// when it is a dynamic module (Debian: libnginx-mod-stream), an error when
// nginx has none.
func nginxLoadStream(bin string) (string, error) {
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: %s -V: %v: %s", bin, err, out)
	}
	m := nginxStreamFlag.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("bench: %s has no stream module (built without --with-stream)", bin)
	}
	if m[1] == "" {
		return "", nil
	}
	dir := "/usr/lib/nginx/modules"
	if mp := nginxModulesPath.FindStringSubmatch(string(out)); mp != nil {
		dir = mp[1]
	}
	so := filepath.Join(dir, "ngx_stream_module.so")
	if _, err := os.Stat(so); err != nil {
		return "", fmt.Errorf("bench: %s has the stream module as a dynamic module, and it is not installed (apt-get install libnginx-mod-stream): %w", bin, err)
	}
	return "load_module " + so + ";", nil
}

// startNginx runs nginx in front of gws, as an L4 proxy (transport tcp) or
// a WebSocket one (ws), and waits until it accepts connections. Its
// workers outlive a SIGKILLed master, so the kernel sends the master
// SIGTERM if the bench dies, and the scenario stops it with SIGTERM: the
// master then stops its workers.
func startNginx(ctx context.Context, bin, dir string, gws []*Proc, transport string) (*Proc, error) {
	var servers strings.Builder
	for _, g := range gws {
		addr := g.Addr.TCP
		if transport == transportWS {
			addr = g.Addr.WS
		}
		fmt.Fprintf(&servers, "        server %s max_fails=0;\n", addr)
	}
	upstream := fmt.Sprintf(nginxUpstream, servers.String())
	load := ""
	if transport == transportTCP {
		var err error
		if load, err = nginxLoadStream(bin); err != nil {
			return nil, err
		}
	}
	dir = filepath.Join(dir, "nginx-"+transport)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	o := child.Options{DeathSignal: syscall.SIGTERM}
	return startOnFreePort(ctx, "nginx", bin, o, func(addr string) ([]string, error) {
		cfg := fmt.Sprintf(nginxMain, load, peerThreads(), dir)
		if transport == transportWS {
			cfg += fmt.Sprintf(nginxWS, upstream, addr, dir)
		} else {
			cfg += fmt.Sprintf(nginxStream, upstream, addr)
		}
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return []string{"-e", "stderr", "-p", dir, "-c", path}, nil
	})
}
