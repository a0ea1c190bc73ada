package protocol

import (
	"net"
	"time"
)

// lingerBytes bounds what a lingering close reads and drops.
const lingerBytes = 4 << 20

// LingerClose closes nc without losing what was written to it last, such
// as an ERROR or an HTTP error that explains the close: it half-closes
// (TCP FIN), then reads and discards what the peer still sends until the
// peer closes, d passes or 4 MiB came, and closes. Closing with unread
// input instead makes the kernel answer with a reset, which can destroy
// that last answer in flight (nginx's lingering close). A connection that
// cannot half-close is closed at once. Only the goroutine that reads nc
// may call it. Conn.Linger is the same for a protocol connection.
func LingerClose(nc net.Conn, d time.Duration) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(d))
		var buf [4096]byte
		for n := 0; n < lingerBytes; {
			m, err := nc.Read(buf[:])
			n += m
			if err != nil {
				break
			}
		}
	}
	return nc.Close()
}
