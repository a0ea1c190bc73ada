package deploy

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestKubernetesManifests decodes deploy/kubernetes/*.yaml strictly into
// k8s.io/api types and checks what no cluster is here to check: selectors
// match labels, probe and Service ports exist on the containers, grace
// periods are above the drain grace, every container runs as non-root
// with a read-only root filesystem and resource requests, --advertise is
// the pod IP from the downward API, the gossip key comes from the Secret,
// the gossip seed is a headless Service that publishes not-ready pods,
// every workload has a PodDisruptionBudget, and the admin port is open
// to the cluster's pods only.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	ws := m.workloads()
	if len(m.statefulSets) != 1 || len(m.deployments) != 1 {
		t.Fatalf("%d StatefulSets, %d Deployments: want the gateways' and the proxies'", len(m.statefulSets), len(m.deployments))
	}
	secrets := map[string]*corev1.Secret{}
	for _, s := range m.secrets {
		secrets[s.Name] = s
	}
	services := map[string]*corev1.Service{}
	for _, s := range m.services {
		services[s.Name] = s
	}
	for _, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			checkWorkload(t, w, secrets, services)
			covered := false
			for _, p := range m.pdbs {
				covered = covered || selects(p.Spec.Selector, w.pod.Labels)
			}
			if !covered {
				t.Error("no PodDisruptionBudget selects it")
			}
		})
	}
	if ss := m.statefulSets[0]; services[ss.Spec.ServiceName] == nil || services[ss.Spec.ServiceName].Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet %s: serviceName %q is not a headless Service", ss.Name, ss.Spec.ServiceName)
	}
	for _, s := range m.services {
		matched := false
		for _, w := range ws {
			if !selectsMap(s.Spec.Selector, w.pod.Labels) {
				continue
			}
			matched = true
			for _, p := range s.Spec.Ports {
				if !hasPort(w.pod.Spec, p.TargetPort) {
					t.Errorf("Service %s port %s: target %s is no container port of %s", s.Name, p.Name, p.TargetPort.String(), w.name)
				}
			}
		}
		if !matched {
			t.Errorf("Service %s selects no workload", s.Name)
		}
	}
	for _, p := range m.pdbs {
		if p.Spec.Selector == nil || (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			t.Errorf("PodDisruptionBudget %s: want a selector and one of maxUnavailable, minAvailable", p.Name)
		}
	}
	adminGuarded := false
	for _, np := range m.policies {
		var targets []workload
		for _, w := range ws {
			if selects(&np.Spec.PodSelector, w.pod.Labels) {
				targets = append(targets, w)
			}
		}
		if len(targets) == 0 {
			t.Errorf("NetworkPolicy %s selects no workload", np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				for _, w := range targets {
					if p.Port == nil || !hasPort(w.pod.Spec, *p.Port) {
						t.Errorf("NetworkPolicy %s: port %v is no container port of %s", np.Name, p.Port, w.name)
					}
				}
				if p.Port != nil && p.Port.String() == "admin" {
					adminGuarded = len(rule.From) > 0
					for _, peer := range rule.From {
						if peer.IPBlock != nil {
							t.Errorf("NetworkPolicy %s: the admin port is open to %v", np.Name, peer.IPBlock)
						}
					}
				}
			}
		}
	}
	if !adminGuarded {
		t.Error("no NetworkPolicy keeps the proxies' admin port to the cluster's pods")
	}
}

// checkWorkload checks one StatefulSet's or Deployment's pod.
func checkWorkload(t *testing.T, w workload, secrets map[string]*corev1.Secret, services map[string]*corev1.Service) {
	if !selects(w.selector, w.pod.Labels) {
		t.Errorf("selector %v does not match the pod labels %v", w.selector, w.pod.Labels)
	}
	spec := w.pod.Spec
	for _, c := range spec.Containers {
		sc, psc := c.SecurityContext, spec.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("container %s may run as root", c.Name)
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: root filesystem not read-only", c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: privilege escalation allowed", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("container %s: no cpu and memory requests", c.Name)
		}
		for _, pr := range []struct {
			name string
			p    *corev1.Probe
		}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				t.Errorf("container %s: no HTTP %s probe", c.Name, pr.name)
				continue
			}
			if !hasPort(spec, pr.p.HTTPGet.Port) {
				t.Errorf("container %s: %s probe port %s is no container port", c.Name, pr.name, pr.p.HTTPGet.Port.String())
			}
		}
		drain := defaultDrainGrace
		if v, ok := argValue(c.Args, "--drain-grace"); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("--drain-grace: %v", err)
			}
			drain = d
		}
		if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
			t.Errorf("terminationGracePeriodSeconds %v is not above the drain grace %v", ptrString(g), drain)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		if adv, _ := argValue(c.Args, "--advertise"); adv != "$(POD_IP)" {
			t.Errorf("container %s: --advertise %q, want $(POD_IP)", c.Name, adv)
		}
		if e := env["POD_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
			t.Errorf("container %s: POD_IP does not come from the downward API's status.podIP", c.Name)
		}
		if strings.Contains(strings.Join(c.Args, " "), "$(POD_NAME)") {
			if e := env["POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Errorf("container %s: $(POD_NAME) is used but not set from metadata.name", c.Name)
			}
		}
		if _, ok := argValue(c.Args, "--gossip-key"); ok {
			t.Errorf("container %s: the gossip key is on the command line", c.Name)
		}
		key := env["GRAFTLB_GOSSIP_KEY"]
		if key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil {
			t.Errorf("container %s: GRAFTLB_GOSSIP_KEY does not come from a Secret", c.Name)
		} else if s := secrets[key.ValueFrom.SecretKeyRef.Name]; s == nil || (s.StringData[key.ValueFrom.SecretKeyRef.Key] == "" && s.Data[key.ValueFrom.SecretKeyRef.Key] == nil) {
			t.Errorf("container %s: the gossip key's Secret %v is not in the manifests", c.Name, key.ValueFrom.SecretKeyRef)
		}
		join, _ := argValue(c.Args, "--join")
		host, port, err := net.SplitHostPort(join)
		if err != nil {
			t.Fatalf("container %s: --join %q: %v", c.Name, join, err)
		}
		seed := services[host]
		if seed == nil || seed.Spec.ClusterIP != corev1.ClusterIPNone || !seed.Spec.PublishNotReadyAddresses {
			t.Errorf("container %s: --join %s is not a headless Service that publishes not-ready pods", c.Name, join)
			continue
		}
		found := false
		for _, p := range seed.Spec.Ports {
			found = found || (p.Protocol == corev1.ProtocolTCP && strconv.Itoa(int(p.Port)) == port)
		}
		if !found {
			t.Errorf("container %s: the seed Service has no TCP port %s", c.Name, port)
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10) + "s"
}
