package listener

import (
	"errors"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// Accept-failure backoff bounds: a failed Accept (out of file descriptors,
// say) is retried after minBackoff, doubling up to maxBackoff while it
// keeps failing, rather than ending the listener or spinning.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Serve accepts connections on ln and hands each to handle, on the calling
// goroutine, until ln is closed or stop is. handle must not block: it
// starts the connection's own goroutine, or closes a connection it does
// not take.
func Serve(ln net.Listener, stop <-chan struct{}, log *zerolog.Logger, handle func(net.Conn)) {
	backoff := minBackoff
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
			t := time.NewTimer(backoff)
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		handle(nc)
	}
}
