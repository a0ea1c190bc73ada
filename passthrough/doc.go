// Package passthrough is graftlb's pass-through mode, for gateways that do
// not speak graftlb's frame protocol (real Graftcode Gateways, whose wire
// format has no call or session ids): it forwards whole TCP and WebSocket
// connections, upgrade headers untouched, and chooses each connection's
// backend by consistent hash (affinity's Maglev preference list) of its
// key — a query parameter, header or cookie of the upgrade request, or the
// client address — among the backends whose liveness check (GET /status,
// as GG offers it) passes. A dial that fails moves down the preference
// list, as HAProxy's "option redispatch" does.
//
// It shares its skeleton with balancer.Proxy through internal/listener:
// the client listeners (with the PROXY protocol), the accept loop and the
// admission of client connections (a total cap and a cap per source).
//
// Threading: one control goroutine applies membership snapshots and
// liveness changes and publishes an immutable routing snapshot; each
// client connection has a goroutine per direction that picks from the
// current snapshot without locks.
package passthrough
