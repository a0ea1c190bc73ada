package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pageRow is a row of the dashboard's pool table as the page shows it.
type pageRow struct {
	GW    string  `json:"gw"`
	State string  `json:"state"`
	Rate  float64 `json:"rate"`
	Lost  float64 `json:"lost"`
}

const readRows = `Array.from(document.querySelectorAll("#rows tr[data-gw]")).map(r =>
	({gw: r.dataset.gw, state: r.dataset.state, rate: +r.dataset.rate, lost: +r.dataset.lost}))`

// artifactDir is where tests leave files for people to look at:
// $GRAFTLB_ARTIFACTS, or the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("GRAFTLB_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// browser starts a headless Chromium (Debian's package, scripts/deps.txt)
// and returns a context for its tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make deps installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestDashboardInBrowser (issue 14): a real headless Chromium opens the
// dashboard of a proxy with three gateways under load, sees all three with
// calls flowing, and within 3 s of one gateway's SIGKILL shows it down
// with its sessions lost. The screenshot is left as an artifact.
func TestDashboardInBrowser(t *testing.T) {
	names := []string{"gw1", "gw2", "gw3"}
	c := newStaticCluster(t, names)
	conn := dialT(t, "tcp://"+c.proxy.Addr.TCP)
	openSessions(t, conn, 30, names)
	load := startStatelessLoad(t, conn, 4, true)
	defer load.halt()

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+c.proxy.Addr.Admin+"/")); err != nil {
		t.Fatal(err)
	}
	rows := func() []pageRow {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		rs, err := chromedp.Run(rctx, chromedp.Evaluate[[]pageRow](readRows))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return rs
	}
	var last []pageRow
	err := waitCtx(ctx, 15*time.Second, func() (bool, error) {
		last = rows()
		if len(last) != len(names) {
			return false, nil
		}
		for _, r := range last {
			if r.State != "up" || r.Rate <= 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the page never listed three gateways up with calls flowing: %+v", last)
	}

	victim := "gw2"
	killed := time.Now()
	c.gws[victim].Kill()
	err = waitCtx(ctx, 3*time.Second, func() (bool, error) {
		last = rows()
		for _, r := range last {
			if r.GW == victim {
				return r.State == "down" && r.Lost > 0, nil
			}
		}
		return false, nil
	})
	shown := time.Since(killed)
	// Let the charts and the timeline take a second more of samples.
	time.Sleep(1500 * time.Millisecond)
	shot, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if serr == nil {
		file := filepath.Join(artifactDir(t), "dashboard.png")
		if werr := os.WriteFile(file, shot, 0o644); werr == nil {
			t.Logf("screenshot: %s", file)
		}
	} else {
		t.Errorf("screenshot: %v", serr)
	}
	if err != nil {
		t.Fatalf("3 s after the kill the page shows %+v, want %s down with sessions lost", last, victim)
	}
	t.Logf("the page showed %s down with its sessions lost %v after the SIGKILL", victim, shown.Round(time.Millisecond))
	timeline, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("timeline").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{victim + " is DOWN", "sessions lost with " + victim} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
}
