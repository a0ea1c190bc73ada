package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// unitDirectives parses a unit file's key=value lines (continuations
// joined), last value winning, as systemd reads single-valued keys.
func unitDirectives(t *testing.T, text string) map[string]string {
	t.Helper()
	d := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q has no '='", line)
		}
		d[k] = v
	}
	return d
}

// TestSystemdUnits runs `systemd-analyze verify` on each unit of
// deploy/systemd (with ExecStart pointing at a freshly built graftlb and
// EnvironmentFile at an empty file, since verify wants them to exist) and
// requires it to say nothing; checks the sandboxing directives and a stop
// timeout above the drain grace; and checks that every flag ExecStart
// passes is one `graftlb CMD -h` lists.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (scripts/deps.txt: systemd-analyze:systemd)")
	}
	bin := proctest.Binary(t)
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) != 2 {
		t.Fatalf("units %v, want graftlb-gateway.service and graftlb-proxy.service", units)
	}
	want := map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"SystemCallFilter": "@system-service", "KillSignal": "SIGTERM", "PrivateDevices": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
	}
	for _, unit := range units {
		t.Run(filepath.Base(unit), func(t *testing.T) {
			b, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			d := unitDirectives(t, text)
			for k, v := range want {
				if got, ok := d[k]; !ok || got != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			exe := strings.Fields(d["ExecStart"])
			if len(exe) < 2 || exe[0] != "/usr/local/bin/graftlb" {
				t.Fatalf("ExecStart %q", d["ExecStart"])
			}
			drain := defaultDrainGrace
			for i, a := range exe {
				if a == "--drain-grace" && i+1 < len(exe) {
					if drain, err = time.ParseDuration(exe[i+1]); err != nil {
						t.Fatal(err)
					}
				}
			}
			stop, err := time.ParseDuration(d["TimeoutStopSec"] + "s")
			if err != nil || stop <= drain {
				t.Errorf("TimeoutStopSec=%s is not above the drain grace %v", d["TimeoutStopSec"], drain)
			}
			help, _ := exec.Command(bin, exe[1], "-h").CombinedOutput()
			for _, a := range exe[2:] {
				if strings.HasPrefix(a, "--") && !regexp.MustCompile(`(?m)^\s+-`+regexp.QuoteMeta(a[2:])+`\b`).Match(help) {
					t.Errorf("ExecStart passes %s, which graftlb %s does not take", a, exe[1])
				}
			}
			if !strings.Contains(d["ExecStart"], "--advertise ${GRAFTLB_ADVERTISE}") {
				t.Error("ExecStart does not pass --advertise")
			}

			dir := t.TempDir()
			env := filepath.Join(dir, "graftlb.env")
			if err := os.WriteFile(env, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			text = strings.ReplaceAll(text, "/usr/local/bin/graftlb", bin)
			text = regexp.MustCompile(`(?m)^EnvironmentFile=.*$`).ReplaceAllString(text, "EnvironmentFile="+env)
			local := filepath.Join(dir, filepath.Base(unit))
			if err := os.WriteFile(local, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", "--man=no", local).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}
