// Package deploy holds no code: it is the home of the deployment files
// (docker/, compose/, kubernetes/, systemd/, haproxy/, nginx/; see
// README.md) and of the tests that check them against the real tools:
// the image is built and run with Docker, the compose topology is brought
// up and faulted, the HAProxy and nginx configurations are served by
// haproxy and nginx in front of real gateways and proxies on loopback,
// the systemd units pass `systemd-analyze verify`, and the Kubernetes
// manifests decode strictly into k8s.io/api types and agree with each
// other.
package deploy
