package deploy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// composeCluster is deploy/compose/compose.yaml brought up under a project
// of its own, its network made internal (no route beyond it; the test
// reaches the containers at their addresses on that network).
type composeCluster struct {
	t       *testing.T
	dir     string
	project string
	cmd     []string // docker compose, or docker-compose
	http    *http.Client
}

// composeOverride cuts the network off from everything beyond it.
const composeOverride = "networks:\n  graftlb:\n    internal: true\n"

// testDrainGrace keeps a gateway's drain, and so the docker stop fault,
// short.
const testDrainGrace = "8s"

func composeCommand(t *testing.T) []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Fatal("neither `docker compose` nor docker-compose is installed (scripts/deps.txt lists docker-compose)")
	return nil
}

func startCompose(t *testing.T, image string) *composeCluster {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	for name, body := range map[string]string{
		"compose.yaml": string(src),
		"test.yaml":    composeOverride,
		"gossip.env":   "GRAFTLB_GOSSIP_KEY=" + base64.StdEncoding.EncodeToString(key) + "\nGRAFTLB_ADMIN_TOKEN=" + adminToken + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &composeCluster{t: t, dir: dir, project: testPrefix + randomSuffix(), cmd: composeCommand(t),
		http: &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range []string{"gw1", "gw2", "gw3", "proxy1", "proxy2"} {
				if id, err := c.compose("ps", "-q", svc); err == nil && id != "" {
					logs, _ := exec.Command("docker", "logs", "--tail", "15", id).CombinedOutput()
					t.Logf("logs of %s:\n%s", svc, logs)
				}
			}
		}
		if out, err := c.compose("down", "--volumes", "--remove-orphans", "--timeout", "1"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := c.compose("up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	return c
}

// compose runs a compose command in the project.
func (c *composeCluster) compose(args ...string) (string, error) {
	full := append(append(append([]string{}, c.cmd[1:]...), "-p", c.project, "-f", "compose.yaml", "-f", "test.yaml"), args...)
	cmd := exec.Command(c.cmd[0], full...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "GRAFTLB_IMAGE="+imageTag, "GRAFTLB_DRAIN_GRACE="+testDrainGrace)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// container returns the container id of a service.
func (c *composeCluster) container(svc string) string {
	c.t.Helper()
	id, err := c.compose("ps", "-q", svc)
	if err != nil || id == "" {
		c.t.Fatalf("compose ps %s: %v %s", svc, err, id)
	}
	return id
}

// network returns the name of the project's network.
func (c *composeCluster) network() string { return c.project + "_graftlb" }

// ip returns a service's address on the project's network ("" when it has
// none: stopped or disconnected).
func (c *composeCluster) ip(svc string) string {
	ip, _ := docker("inspect", "-f", `{{with index .NetworkSettings.Networks "`+c.network()+`"}}{{.IPAddress}}{{end}}`, c.container(svc))
	return ip
}

// poolEntry is the part of a proxy's GET /pool the test reads.
type poolEntry struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Instance string `json:"instance"`
}

// pool reads a proxy's /pool by gateway name; nil if it does not answer.
func (c *composeCluster) pool(proxy string) map[string]poolEntry {
	ip := c.ip(proxy)
	if ip == "" {
		return nil
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+ip+":9889/pool", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var list []poolEntry
	if json.Unmarshal(b, &list) != nil {
		return nil
	}
	m := map[string]poolEntry{}
	for _, e := range list {
		m[e.Name] = e
	}
	return m
}

var proxies = []string{"proxy1", "proxy2"}

// adminToken is the proxies' admin token in the test's gossip.env.
const adminToken = "compose-test-admin-token"

// everyProxy reports whether cond holds of every proxy's pool.
func (c *composeCluster) everyProxy(cond func(map[string]poolEntry) bool) bool {
	for _, p := range proxies {
		pool := c.pool(p)
		if pool == nil || !cond(pool) {
			return false
		}
	}
	return true
}

// full reports whether a pool holds the three gateways, all ready.
func full(pool map[string]poolEntry) bool {
	for _, g := range []string{"gw1", "gw2", "gw3"} {
		if pool[g].State != "ready" {
			return false
		}
	}
	return len(pool) == 3
}

func (c *composeCluster) waitFull(what string) {
	c.t.Helper()
	waitUntil(c.t, 40*time.Second, what+": every proxy's pool to hold gw1..gw3, ready", func() bool { return c.everyProxy(full) })
}

// Used by the fault test and by nothing else, so that the fault's
// numbers say which run they come from.
func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
