package protocol

// Names the protocol reserves (SPEC.md section 7). Module code may not use
// event, method or module names that begin with '$'.
const (
	// EventSessionLost is the method of the EVENT a proxy sends a client
	// when the gateway holding one of its sessions died; its body is an
	// ERROR body with code SESSION_LOST.
	EventSessionLost = "$session_lost"
	// TopicModule and TopicType name the reserved topic methods
	// (TopicSubscribe, TopicUnsubscribe); topic EVENTs carry TopicModule.
	TopicModule      = "$topic@1"
	TopicType        = "Topic"
	TopicSubscribe   = "Subscribe"
	TopicUnsubscribe = "Unsubscribe"
)

// Names of the session handoff between gateways (SPEC.md section 7,
// Handoff): a draining gateway dials the gateway that takes a session with
// a HELLO carrying PROXY and client HandoffClient, and sends a CALL of
// HandoffModule.HandoffType.HandoffAdopt whose body carries the session's
// objects.
const (
	HandoffModule = "$handoff@1"
	HandoffType   = "Session"
	HandoffAdopt  = "Adopt"
	HandoffClient = "graftlb-handoff/1"
)
