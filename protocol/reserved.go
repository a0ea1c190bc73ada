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
