package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Docker resources the tests create carry this prefix and a random
// suffix, so that concurrent runs on one daemon never touch each other's;
// each test removes what it made, and TestMain the image.
const testPrefix = "graftlbtest"

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testImage builds the image with `make image` under a tag of its own,
// once per test process; removeImage (from TestMain) deletes the tag.
func testImage(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		tag := "graftlb:" + testPrefix + "-" + randomSuffix()
		cmd := exec.Command("make", "-s", "image", "IMAGE="+tag)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("make image: %v\n%s", err, out)
			return
		}
		imageTag = tag
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageTag
}

func removeImage() {
	if imageTag != "" {
		_ = exec.Command("docker", "rmi", "-f", imageTag).Run()
	}
}

// docker runs a docker command and returns its trimmed stdout.
func docker(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImage inspects the image `make image` builds: FROM scratch with the
// binary alone, a numeric non-root user, a HEALTHCHECK that runs
// `graftlb healthcheck`; and runs it: the static binary starts in an image
// without libc, and a gateway in it becomes healthy.
func TestImage(t *testing.T) {
	img := testImage(t)
	var info []struct {
		Config struct {
			User        string
			Entrypoint  []string
			Env         []string
			Healthcheck struct{ Test []string }
		}
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(mustDocker(t, "image", "inspect", img)), &info); err != nil || len(info) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	c := info[0].Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want a numeric non-root uid:gid", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/graftlb" {
		t.Errorf("entrypoint %v", c.Entrypoint)
	}
	if hc := strings.Join(c.Healthcheck.Test, " "); hc != "CMD /graftlb healthcheck" {
		t.Errorf("healthcheck %q", hc)
	}
	if n := len(info[0].RootFS.Layers); n != 1 {
		t.Errorf("%d layers, want 1 (the binary on scratch)", n)
	}
	out := mustDocker(t, "run", "--rm", "--network", "none", img, "version")
	if !strings.HasPrefix(out, "graftlb ") {
		t.Errorf("graftlb version in the image: %q", out)
	}

	// A gateway as the image's HEALTHCHECK sees it, on no network at all.
	name := testPrefix + "-img-" + randomSuffix()
	mustDocker(t, "run", "-d", "--name", name, "--network", "none", "--read-only", "--cap-drop", "ALL",
		"--health-interval", "200ms", "--health-start-period", "5s",
		img, "gateway", "--name", "gw1", "--tcp", "0.0.0.0:8990", "--ws", "", "--http", "0.0.0.0:8889")
	defer func() { _, _ = docker("rm", "-f", name) }()
	var status string
	waitUntil(t, 20*time.Second, "the gateway container to be healthy", func() bool {
		status, _ = docker("inspect", "-f", "{{.State.Health.Status}}", name)
		return status == "healthy"
	})
}
