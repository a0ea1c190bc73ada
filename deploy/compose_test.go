package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of compose.yaml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
	} `yaml:"networks"`
}

type composeService struct {
	Image           string   `yaml:"image"`
	Hostname        string   `yaml:"hostname"`
	EnvFile         any      `yaml:"env_file"`
	Networks        []string `yaml:"networks"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	ReadOnly        bool     `yaml:"read_only"`
	CapDrop         []string `yaml:"cap_drop"`
	Command         []string `yaml:"command"`
	Ports           []string `yaml:"ports"`
	Healthcheck     struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// defaultDrainGrace is what --drain-grace means when the command line
// does not say (gateway.DefaultDrainGrace; the proxy's drain, once it has
// one, uses the same).
const defaultDrainGrace = 30 * time.Second

var composeVar = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

// expand replaces ${VAR:-default} with its default, as compose does when
// VAR is unset.
func expand(s string) string { return composeVar.ReplaceAllString(s, "$2") }

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// flagValue returns the value of --name in a command line.
func flagValue(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		if a == name && i+1 < len(cmd) {
			return expand(cmd[i+1]), true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return expand(v), true
		}
	}
	return "", false
}

// TestComposeFile checks compose.yaml's cross-references: three gateways
// and two proxies on one network; every --join target is a gateway's
// gossip listener; each node advertises its own service name; the gossip
// key comes from the env file, never a command line; stop_grace_period is
// above the drain grace; health checks use `graftlb healthcheck` on a
// port the service listens on; only the proxies' client listeners are
// published, on loopback.
func TestComposeFile(t *testing.T) {
	f := loadCompose(t)
	roles := map[string][]string{}
	for name, s := range f.Services {
		roles[s.Command[0]] = append(roles[s.Command[0]], name)
	}
	slices.Sort(roles["gateway"])
	slices.Sort(roles["proxy"])
	if !slices.Equal(roles["gateway"], []string{"gw1", "gw2", "gw3"}) || !slices.Equal(roles["proxy"], []string{"proxy1", "proxy2"}) {
		t.Fatalf("services by role: %v", roles)
	}
	gossipPorts := map[string]string{}
	for name, s := range f.Services {
		g, ok := flagValue(s.Command, "--gossip")
		if !ok {
			t.Fatalf("%s: no --gossip", name)
		}
		gossipPorts[name] = g[strings.LastIndex(g, ":")+1:]
	}
	for name, s := range f.Services {
		t.Run(name, func(t *testing.T) {
			if s.Hostname != name {
				t.Errorf("hostname %q", s.Hostname)
			}
			if v, _ := flagValue(s.Command, "--name"); v != name {
				t.Errorf("--name %q", v)
			}
			if v, _ := flagValue(s.Command, "--advertise"); v != name {
				t.Errorf("--advertise %q, want the service name", v)
			}
			join, _ := flagValue(s.Command, "--join")
			seeds := strings.Split(join, ",")
			if len(seeds) < 2 {
				t.Errorf("--join %q: want every gateway", join)
			}
			for _, seed := range seeds {
				host, port, _ := strings.Cut(seed, ":")
				if _, ok := f.Services[host]; !ok || !slices.Contains(roles["gateway"], host) || gossipPorts[host] != port {
					t.Errorf("--join %s is no gateway's gossip listener", seed)
				}
			}
			if _, ok := flagValue(s.Command, "--gossip-key"); ok {
				t.Error("the gossip key is on the command line")
			}
			if s.EnvFile != "gossip.env" {
				t.Errorf("env_file %v, want gossip.env (GRAFTLB_GOSSIP_KEY)", s.EnvFile)
			}
			if len(s.Networks) != 1 {
				t.Errorf("networks %v", s.Networks)
			} else if _, ok := f.Networks[s.Networks[0]]; !ok {
				t.Errorf("network %q is not defined", s.Networks[0])
			}
			stop, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period: %v", err)
			}
			drain := defaultDrainGrace
			if v, ok := flagValue(s.Command, "--drain-grace"); ok {
				if drain, err = time.ParseDuration(v); err != nil {
					t.Fatalf("--drain-grace: %v", err)
				}
			}
			if stop <= drain {
				t.Errorf("stop_grace_period %v is not above the drain grace %v", stop, drain)
			}
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("read_only %v, cap_drop %v", s.ReadOnly, s.CapDrop)
			}
			hc := s.Healthcheck.Test
			if len(hc) != 4 || hc[0] != "CMD" || hc[1] != "/graftlb" || hc[2] != "healthcheck" {
				t.Fatalf("healthcheck %v", hc)
			}
			listener := "--http"
			if s.Command[0] == "proxy" {
				listener = "--admin"
			}
			l, _ := flagValue(s.Command, listener)
			if port := l[strings.LastIndex(l, ":")+1:]; !strings.HasPrefix(hc[3], "http://127.0.0.1:"+port+"/") {
				t.Errorf("healthcheck %s, but %s is %s", hc[3], listener, l)
			}
			tcp, _ := flagValue(s.Command, "--tcp")
			ws, _ := flagValue(s.Command, "--ws")
			for _, p := range s.Ports {
				parts := strings.Split(p, ":")
				if len(parts) != 3 || parts[0] != "127.0.0.1" {
					t.Errorf("port %s: publish on 127.0.0.1 only", p)
					continue
				}
				if s.Command[0] != "proxy" || (!strings.HasSuffix(tcp, ":"+parts[2]) && !strings.HasSuffix(ws, ":"+parts[2])) {
					t.Errorf("port %s is not a proxy's client listener", p)
				}
			}
			if s.Command[0] == "proxy" && len(s.Ports) == 0 {
				t.Error("a proxy publishes no client port")
			}
		})
	}
}
