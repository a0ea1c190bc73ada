package protocol

// Hello is the body of a HELLO frame, a CBOR map with these text keys.
// Unknown keys are ignored, so later versions can add some.
type Hello struct {
	// Client names the client software, for logs ("graftlb-go/1").
	Client string `cbor:"client,omitempty"`
	// Credential is an opaque token for gateways that authenticate.
	Credential []byte `cbor:"credential,omitempty"`
	// MaxFrame is the largest frame the client accepts (0: the default).
	MaxFrame uint32 `cbor:"max_frame,omitempty"`
	// Instance is sent by a proxy (with FlagProxy): a random hex id per
	// proxy process, the same on all its connections to a gateway, so that
	// the gateway sends each topic EVENT once per proxy (SPEC.md section 7).
	Instance string `cbor:"instance,omitempty"`
}

// Welcome is the body of a WELCOME frame, a CBOR map with these text keys.
type Welcome struct {
	// Server names the gateway (its --name) or "graftlb" for a proxy.
	Server string `cbor:"server,omitempty"`
	// MaxFrame is the largest frame the server accepts.
	MaxFrame uint32 `cbor:"max_frame,omitempty"`
	// MaxInflight is how many calls the connection may have in flight.
	MaxInflight uint32 `cbor:"max_inflight,omitempty"`
	// IdleTimeoutMs is how long the server keeps a silent connection open.
	IdleTimeoutMs uint32 `cbor:"idle_timeout_ms,omitempty"`
	// SessionTTLMs is how long a session without calls keeps its objects.
	SessionTTLMs uint32 `cbor:"session_ttl_ms,omitempty"`
}
