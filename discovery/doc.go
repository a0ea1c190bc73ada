// Package discovery tells the balancer which gateways exist, what they
// serve and whether they admit new sessions.
//
// An embedded gateway (package gateway) joins a pool in one call:
//
//	cfg := discovery.DefaultConfig() // gossip key from $GRAFTLB_GOSSIP_KEY
//	cfg.BindAddr = "10.0.0.5:7946"
//	cfg.Join = []string{"10.0.0.1:7946"}
//	ms, err := discovery.JoinGateway(gw, cfg)
//	// handle err; defer ms.Close()
//
// JoinGateway announces the gateway's name, listen addresses and modules,
// gossips its drain (off the gateway's own goroutines: gossiping a change
// may wait for seconds) and leaves the pool when the gateway stops. Proxies
// of the pool (graftlb proxy --gossip) run a Gossip of role RoleProxy and
// balance over the gateways it reports.
//
// # Snapshots and sources
//
// The balancer consumes immutable Snapshots (members sorted by name, a
// version that grows by one per change) and rebuilds its picker and Maglev
// table from each; nothing in a Snapshot changes after it is published, so
// the data path reads it without locks. A Source produces them. Its
// threading rule (see Source) is the one grpc's balancers use: one
// consumer, snapshots in order and never concurrently, the newest replacing
// an unread one, and publishing never blocks, so a slow balancer cannot
// stall gossip.
//
// Three sources describe a pool:
//
//   - Gossip: gateways and proxies join one hashicorp/memberlist cluster
//     and announce themselves in node metadata (EncodeMeta): role,
//     listeners, modules, weight, ready/draining, zone and a random
//     per-process instance id.
//   - Static: a fixed list (ParseBackends), for real GG instances, which do
//     not gossip.
//   - DNS: a name re-resolved every 5 s, one member per address.
//
// For the same pool they publish equal members: a static or DNS member is a
// gateway named host:port (unless name= says otherwise), Ready, weight 1,
// with no instance id and no module list. An empty module list means
// "unknown": the balancer must treat such a member as serving every module
// (Member.Serves) rather than none.
//
// # Identity
//
// A gateway that restarts under the same name is a new member: its
// objects and sessions died with the old process. Its Instance (drawn at
// random when a Gossip is created) differs, so the balancer compares
// (Name, Instance), not Name, and fails the sessions bound to the old
// instance with SESSION_LOST.
//
// # Metadata
//
// memberlist limits node metadata to 512 bytes (MaxMetaSize documents the
// budget). The encoding is a version byte and tag-length-value fields;
// decoders skip unknown tags, so a newer node can add fields that older
// nodes ignore, and DecodeMeta never panics on hostile input.
//
// # Memberlist timing
//
// Gossip starts from memberlist.DefaultLANConfig and keeps its timing, as
// measured on graftlb's test machines: a join is seen in 0.15–0.31 s,
// a killed member is declared dead in 6–10 s at 0.2% of a core per member
// and without false deaths under load. Faster probing (200 ms) found deaths
// in 1–2 s but cost 3–4× the CPU and declared busy members dead;
// DefaultLocalConfig left members blind for 17–20 s. So gossip is the
// source of membership and metadata, and the fast failure detectors are
// the data path (refused or reset connections) and active health checks,
// not memberlist. Two changes to the profile:
//
//   - After the first successful join, the seeds are joined once more
//     (Config.RejoinAfter, 2 s): after a mass start about one member in a
//     hundred missed a peer until the next push/pull, 30 s later; a second
//     full state exchange with the seeds closes that gap cheaply. Until a
//     seed answers, the join is retried every Config.JoinRetry, because
//     seeds often start after their members.
//   - A node killed and restarted under its name on another address (port
//     0, a new pod IP) is refused as a name conflict while the others hold
//     its old run; memberlist offers it again only at the next push/pull,
//     which measured 32–60 s after the restart. Gossip sets
//     DeadNodeReclaimTime to 1 s and, on memberlist's conflict report,
//     re-joins every JoinRetry for a while, so the new run is seen about
//     2 s after the old one is declared dead (8 s in the tests).
//   - Every member joins one seed again every Config.RejoinInterval (3 s;
//     one TCP push/pull each). After a partition long enough for both
//     sides to declare the other dead, memberlist alone gossips to the
//     dead only briefly and pushes/pulls only with live members: the
//     healed member stayed out for about 35 s. The exchange with a seed
//     tells each side it was declared dead, both refute, and the cluster
//     is whole again about 3 s after the network heals.
//
// # Addresses
//
// Members announce addresses others can dial. A gossip listener bound to
// a wildcard address (0.0.0.0 in a container) advertises a private IP of
// the machine, and listeners bound to a wildcard address are announced
// with the gossip's IP: a proxy that dialed a gateway's [::]:8990 would
// reach itself. Config.AdvertiseAddr (graftlb --advertise; in Kubernetes
// the pod IP from the downward API) replaces the host of all of them, and
// may be a name that peers resolve when they dial. Bind addresses and
// seeds may be names too.
//
// Gossip is encrypted with a shared key (AES-GCM, from GRAFTLB_GOSSIP_KEY
// or a flag) and labelled per cluster (memberlist Label, default
// "graftlb"): a node with another key or label never enters the pool, and
// the refusing members log it at warn level with the reason, since
// memberlist's own log lines are routed into zerolog (see logging.go).
package discovery
