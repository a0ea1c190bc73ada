// Package listener is the client side that graftlb's servers share: binding
// the client listeners (optionally behind the PROXY protocol), the accept
// loop, and admission of client connections under a total cap and a cap per
// source address, with rate-limited refusal logs.
//
// balancer.Proxy and passthrough.Proxy bind their TCP and WebSocket
// listeners with Bind and admit connections through an Admission; the
// gateway and both proxies accept TCP connections with Serve.
package listener
