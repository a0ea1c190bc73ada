package protocol

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// wsFuzzMaxFrame is the frame limit of the WebSocket fuzz target's server:
// small, so that inputs the fuzzer finds cross it.
const wsFuzzMaxFrame = 4 << 10

// FuzzWSReader feeds arbitrary bytes, as a client's side of an upgraded
// WebSocket connection, to a server's Conn: the WebSocket library's frame
// parser (masking, fragments, control frames, close) and the binding's
// reader (message limit, text messages, pooled buffers) over an in-memory
// pipe, upgraded by a real handshake. The reader must not panic or hang,
// return no more frame bytes than it was sent, return no frame over the
// limit, hold no more buffer than one frame of the limit needs, and fail
// with a protocol error or the end of the input.
func FuzzWSReader(f *testing.F) {
	frame, err := AppendFrame(nil, sampleFrame())
	if err != nil {
		f.Fatal(err)
	}
	ping, _ := AppendFrame(nil, &Frame{Type: TypePing})
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	f.Add(wsClientFrame(true, websocket.BinaryMessage, frame))
	f.Add(cat(wsClientFrame(true, websocket.BinaryMessage, ping), wsClientFrame(true, websocket.BinaryMessage, frame)))
	f.Add(cat(wsClientFrame(false, websocket.BinaryMessage, frame[:10]), wsClientFrame(true, 0, frame[10:]))) // fragmented
	f.Add(cat(wsClientFrame(false, websocket.BinaryMessage, frame[:10]), wsClientFrame(true, websocket.PingMessage, []byte("p")),
		wsClientFrame(true, 0, frame[10:]))) // a ping between fragments
	f.Add(wsClientFrame(true, websocket.TextMessage, []byte("hello")))
	f.Add(wsClientFrame(true, websocket.BinaryMessage, make([]byte, wsFuzzMaxFrame+1))) // over the limit
	f.Add(cat(wsClientFrame(true, websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")),
		wsClientFrame(true, websocket.BinaryMessage, frame)))
	f.Add(wsClientFrame(true, websocket.BinaryMessage, nil))
	unmasked := wsClientFrame(true, websocket.BinaryMessage, ping)
	unmasked[1] &^= 0x80
	f.Add(unmasked)
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}) // a 2^63-byte message declared
	f.Fuzz(func(t *testing.T, b []byte) {
		srv, cli := net.Pipe()
		req := httptest.NewRequest(http.MethodGet, WSPath, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		up := websocket.Upgrader{ReadBufferSize: WSReadBufferSize, WriteBufferSize: WSWriteBufferSize,
			WriteBufferPool: WSWriteBufferPool(), CheckOrigin: func(*http.Request) bool { return true }}
		failed := make(chan string, 1)
		go func() {
			failed <- readWS(&up, &hijacker{conn: srv}, req, len(b))
		}()
		drained := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, cli) // the 101, pongs, the close
			close(drained)
		}()
		_, _ = cli.Write(b)
		_ = cli.Close()
		select {
		case msg := <-failed:
			if msg != "" {
				t.Fatal(msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not return after the input ended")
		}
		<-drained
	})
}

// readWS upgrades req, reads frames until an error and returns what was
// wrong with the reader's behaviour, or "".
func readWS(up *websocket.Upgrader, w *hijacker, req *http.Request, sent int) string {
	ws, err := up.Upgrade(w, req, nil)
	if err != nil {
		_ = w.conn.Close()
		return "upgrade: " + err.Error()
	}
	pc := NewWSConn(ws, ConnOptions{Limits: Limits{MaxFrame: wsFuzzMaxFrame}})
	defer pc.Abort()
	total := 0
	for {
		fr, err := pc.ReadFrame()
		if held, _ := pc.retained(); held > 2*wsFuzzMaxFrame {
			return "the reader holds " + strconv.Itoa(held) + " bytes"
		}
		if err != nil {
			var perr *Error
			if errors.As(err, &perr) && perr.Code != CodeBadFrame && perr.Code != CodeTooLarge {
				return "unexpected protocol error " + perr.Error()
			}
			return ""
		}
		if len(fr) > wsFuzzMaxFrame {
			return "a frame of " + strconv.Itoa(len(fr)) + " bytes passed the limit"
		}
		if total += len(fr); total > sent {
			return "read " + strconv.Itoa(total) + " frame bytes of " + strconv.Itoa(sent) + " sent"
		}
		var f Frame
		_ = Decode(fr, &f)
	}
}

// hijacker is the http.ResponseWriter of an upgrade over conn: the
// WebSocket library hijacks it at once.
type hijacker struct {
	conn net.Conn
	h    http.Header
}

func (w *hijacker) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *hijacker) Write(b []byte) (int, error) { return w.conn.Write(b) }
func (w *hijacker) WriteHeader(int)             {}
func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// wsClientFrame encodes one WebSocket frame as a client sends it (RFC 6455
// section 5.2): masked, with a fixed masking key.
func wsClientFrame(fin bool, opcode int, payload []byte) []byte {
	b0 := byte(opcode)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}
