package gatewaytest

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// ValidKey is a Sec-WebSocket-Key as RFC 6455 section 4.2.1 wants it: the
// base64 of 16 bytes.
var ValidKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))

// Upgrade returns the exact bytes of a WebSocket upgrade request for path
// with key; extra header lines (each ending in \r\n) go before the blank
// line, body after it.
func Upgrade(path, key, extra, body string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: graftlb.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n" + extra + "\r\n" + body)
}

// HTTPAbuse is a malformed HTTP request to a WebSocket listener, and the
// status it must be answered with before the connection closes.
type HTTPAbuse struct {
	Name    string
	Request []byte
	Status  int
}

// HTTPAbuses are the malformed upgrade requests every WebSocket listener
// (proxy and gateway) must refuse with a status, not a reset or a 101.
var HTTPAbuses = []HTTPAbuse{
	{"key not base64", Upgrade("/ws", "not a key!", "", ""), http.StatusBadRequest},
	{"key of 15 bytes", Upgrade("/ws", base64.StdEncoding.EncodeToString(make([]byte, 15)), "", ""), http.StatusBadRequest},
	{"key of 17 bytes", Upgrade("/ws", base64.StdEncoding.EncodeToString(make([]byte, 17)), "", ""), http.StatusBadRequest},
	{"Content-Length and Transfer-Encoding", Upgrade("/ws", ValidKey,
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), http.StatusBadRequest},
	{"256 KiB header", Upgrade("/ws", ValidKey, "X-Big: "+strings.Repeat("a", 256<<10)+"\r\n", ""),
		http.StatusRequestHeaderFieldsTooLarge},
}

// RawHTTP dials addr, writes req exactly, and returns the status code of
// the response and the reader positioned after its header. It fails the
// test if no status line arrives within Timeout (a reset, say).
func RawHTTP(tb testing.TB, addr string, req []byte) (int, *bufio.Reader, net.Conn) {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	// Write it all before reading, as a simple client does: a server
	// that answers before it has read everything and then closes makes
	// the kernel reset the connection, which can destroy the answer.
	_ = nc.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := nc.Write(req); err != nil {
		tb.Errorf("writing the request: %v", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(Timeout))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("no HTTP response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, br, nc
}

// ExpectClosed reads r until the server closes the connection and fails
// the test if that takes longer than d.
func ExpectClosed(tb testing.TB, nc net.Conn, r io.Reader, d time.Duration) {
	tb.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(d))
	if _, err := io.Copy(io.Discard, r); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			tb.Fatalf("connection still open after %v", d)
		}
		// A reset instead of a close: the server closed with unread data,
		// and a client still writing would have lost the answer.
		tb.Fatalf("connection ended with %v, want a clean close", err)
	}
}

// HugeFrameHeader upgrades a connection to addr's /ws and sends only the
// header of a masked binary WebSocket frame that declares a payload of
// 2^40 bytes. It returns the status code of the close frame the server
// answers with (0 if it sends none) and fails the test if the server
// neither answers nor closes within d.
func HugeFrameHeader(tb testing.TB, addr string, d time.Duration) uint16 {
	tb.Helper()
	status, br, nc := RawHTTP(tb, addr, Upgrade("/ws", ValidKey, "", ""))
	if status != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade answered %d", status)
	}
	hdr := []byte{0x82, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<40)
	hdr = append(hdr, 1, 2, 3, 4) // masking key
	if _, err := nc.Write(hdr); err != nil {
		tb.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(d))
	var code uint16
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tb.Fatalf("after a 2^40-byte frame header: no close within %v", d)
			}
			return code // closed
		}
		n := int(h[1] & 0x7f)
		if n > 125 {
			tb.Fatalf("server sent a frame of length code %d, want a close frame", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return code
		}
		if h[0]&0x0f == 0x8 && code == 0 && n >= 2 {
			code = binary.BigEndian.Uint16(payload)
		}
	}
}

// String describes a status for messages.
func (a HTTPAbuse) String() string { return fmt.Sprintf("%s (want %d)", a.Name, a.Status) }

// EarlyHello writes, in one write, a WebSocket upgrade request to addr's
// /ws and right after it a masked binary message holding a HELLO frame,
// as a client that does not wait for the 101 would (RFC 6455 says to
// wait; some do not). It returns the first frame the server answers over
// WebSocket: a WELCOME shows that the bytes sent with the request reached
// the protocol and none was lost in the upgrade.
func EarlyHello(tb testing.TB, addr string) *protocol.Frame {
	tb.Helper()
	hello := Encode(tb, &protocol.Frame{Type: protocol.TypeHello, Session: protocol.NewSessionID(),
		Body: mustMarshal(tb, protocol.Hello{Client: "early"})})
	mask := [4]byte{7, 1, 2, 3}
	msg := []byte{0x82, 0x80 | 126}
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(hello)))
	msg = append(msg, mask[:]...)
	for i, b := range hello {
		msg = append(msg, b^mask[i%4])
	}
	status, br, nc := RawHTTP(tb, addr, append(Upgrade("/ws", ValidKey, "", ""), msg...))
	if status != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade answered %d", status)
	}
	_ = nc.SetReadDeadline(time.Now().Add(Timeout))
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			tb.Fatalf("no answer to the early HELLO: %v", err)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			_, _ = io.ReadFull(br, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, _ = io.ReadFull(br, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		if n > 1<<20 {
			tb.Fatalf("server message of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			tb.Fatalf("reading the answer: %v", err)
		}
		if h[0]&0x0f != 0x2 { // not binary: a ping or a close
			if h[0]&0x0f == 0x8 {
				tb.Fatalf("server closed instead of answering the early HELLO")
			}
			continue
		}
		var f protocol.Frame
		if err := protocol.Decode(payload, &f); err != nil {
			tb.Fatalf("answer is not a frame: %v", err)
		}
		return &f
	}
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := protocol.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
