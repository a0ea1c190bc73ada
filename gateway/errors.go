package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/graftlb/graftlb/protocol"
)

// AppError is an application exception a method returns on purpose: the
// caller gets APP_EXCEPTION with this Type and Message, as a native
// exception of that type. Other errors map as follows (see toWire):
//
//   - a *protocol.Error (anywhere in the chain) is sent with its own code,
//     so a module can answer UNAVAILABLE, BAD_ARGS, NOT_FOUND...;
//   - context.DeadlineExceeded is DEADLINE_EXCEEDED;
//   - any other error is APP_EXCEPTION with the error's message and its Go
//     type (e.g. "*fs.PathError") as the exception type.
//
// A panic in module code is APP_EXCEPTION of type PanicType with the
// message "internal error in module@version.Type.Method"; the panic's
// value and stack are logged, never sent.
type AppError struct {
	Type    string
	Message string
}

// PanicType is the exception type of the APP_EXCEPTION that answers a call
// whose module code panicked.
const PanicType = "panic"

func (e *AppError) Error() string { return e.Type + ": " + e.Message }

// toWire turns what a call returned into the error an ERROR frame carries.
func toWire(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	var ae *AppError
	if errors.As(err, &ae) {
		return &protocol.Error{Code: protocol.CodeAppException, Message: ae.Message, Type: ae.Type}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.Errorf(protocol.CodeDeadlineExceeded, "%v", err)
	case errors.Is(err, context.Canceled):
		return protocol.Errorf(protocol.CodeUnavailable, "call canceled: %v", err)
	}
	return &protocol.Error{Code: protocol.CodeAppException, Message: err.Error(), Type: fmt.Sprintf("%T", err)}
}
