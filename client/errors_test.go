package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

func TestCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{protocol.Errorf(protocol.CodeSessionLost, "gone"), "SESSION_LOST"},
		{fmt.Errorf("call: %w", protocol.Errorf(protocol.CodeDraining, "x")), "DRAINING"},
		{client.ErrConnectionLost, "CONNECTION_LOST"},
		{client.ErrClosed, "CLOSED"},
		{context.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{context.Canceled, "CANCELED"},
		{fmt.Errorf("something else"), "OTHER"},
	} {
		if got := client.Code(tc.err); got != tc.want {
			t.Errorf("Code(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
