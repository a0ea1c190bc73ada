package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// HealthcheckEnv names the URL `graftlb healthcheck` checks when it is
// given none, so that one image's HEALTHCHECK serves gateways and proxies
// alike (each container sets its own URL).
const HealthcheckEnv = "GRAFTLB_HEALTHCHECK_URL"

// defaultHealthcheckTimeout bounds the whole check, connect to last byte;
// Docker's own HEALTHCHECK timeout (30 s by default) is far longer.
const defaultHealthcheckTimeout = 2 * time.Second

// runHealthcheck is `graftlb healthcheck [--timeout D] [URL]`: one GET,
// exit 0 on a 2xx answer and 1 on anything else (another status, a refused
// connection, the timeout), for the HEALTHCHECK of an image that has no
// shell and no curl. Proxies from the environment are ignored: the URL is
// the container's own listener. Exit 2 is a usage error.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: graftlb healthcheck [--timeout 2s] [http://HOST:PORT/PATH]\n\n"+
			"GETs the URL (default: $"+HealthcheckEnv+"); exit 0 on 2xx, 1 otherwise.\n\nflags:")
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", defaultHealthcheckTimeout, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	target := os.Getenv(HealthcheckEnv)
	switch fs.NArg() {
	case 0:
		if target == "" {
			fmt.Fprintln(stderr, "graftlb healthcheck: give a URL or set $"+HealthcheckEnv)
			return 2
		}
	case 1:
		target = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "graftlb healthcheck: one URL, got %d arguments\n", fs.NArg())
		return 2
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "graftlb healthcheck: %q: want http://HOST:PORT/PATH\n", target)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "graftlb healthcheck: --timeout must be positive")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb healthcheck:", err)
		return 2
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb healthcheck: unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "graftlb healthcheck: unhealthy: %s answered %s\n", u.Redacted(), resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", u.Redacted(), resp.Status)
	return 0
}
