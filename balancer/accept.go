package balancer

import (
	"errors"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// acceptLoop accepts connections on ln and hands each to handle, until ln
// is closed or stop is. A failed Accept (out of file descriptors, say) is
// logged and retried after a pause rather than ending the listener.
func acceptLoop(ln net.Listener, stop <-chan struct{}, log *zerolog.Logger, handle func(net.Conn)) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn().Err(err).Msg("accept failed")
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		handle(nc)
	}
}
