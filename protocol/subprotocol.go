package protocol

// WSSubprotocol is the WebSocket subprotocol of the binding (SPEC.md
// section 1): a client may offer it in Sec-WebSocket-Protocol, and a
// gateway or proxy that is offered it selects it in its 101 response, so
// that a browser page can tell it reached a Hypertube endpoint. Offering
// it is optional; offering only other subprotocols gets none selected,
// which a browser treats as a failed handshake.
const WSSubprotocol = "hypertube.v1"
