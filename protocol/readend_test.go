package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestClassifyRead: every way a read ends maps to one ReadEnd, wrapped or
// not, and a protocol error comes back as itself.
func TestClassifyRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	_, timeout := c.Read(make([]byte, 1))
	_ = c.Close()
	_, closed := c.Read(make([]byte, 1))
	pe := Errorf(CodeTooLarge, "frame over the limit")
	tests := []struct {
		name string
		err  error
		want ReadEnd
	}{
		{"protocol error", pe, ReadProtocolError},
		{"wrapped protocol error", fmt.Errorf("read: %w", pe), ReadProtocolError},
		{"deadline", timeout, ReadTimeout},
		{"EOF", io.EOF, ReadEOF},
		{"cut inside a frame", io.ErrUnexpectedEOF, ReadCut},
		{"WebSocket close 1000", &websocket.CloseError{Code: websocket.CloseNormalClosure}, ReadEOF},
		{"WebSocket close 1001", &websocket.CloseError{Code: websocket.CloseGoingAway}, ReadEOF},
		{"WebSocket drop 1006", &websocket.CloseError{Code: websocket.CloseAbnormalClosure}, ReadCut},
		{"closed here", closed, ReadClosed},
		{"net.ErrClosed", fmt.Errorf("read tcp: %w", net.ErrClosed), ReadClosed},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, ReadFailed},
		{"WebSocket close 1002", &websocket.CloseError{Code: websocket.CloseProtocolError}, ReadFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotPE := ClassifyRead(tt.err)
			if got != tt.want {
				t.Fatalf("ClassifyRead(%v) = %s, want %s", tt.err, got, tt.want)
			}
			if (gotPE != nil) != (tt.want == ReadProtocolError) || (gotPE != nil && !errors.Is(gotPE, pe)) {
				t.Fatalf("ClassifyRead(%v) returned the protocol error %v", tt.err, gotPE)
			}
		})
	}
}

// TestLingerClose: a connection closed with LingerClose while its peer is
// still sending delivers the last answer whole, followed by a clean EOF,
// where a plain close with unread input resets it.
func TestLingerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answer := bytes.Repeat([]byte("answer "), 10000)
	done := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		_, _ = nc.Read(make([]byte, 1)) // the peer has started sending
		if _, err := nc.Write(answer); err != nil {
			done <- err
			return
		}
		done <- LingerClose(nc, 5*time.Second)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() { // the peer keeps sending, as a client that did not wait does
		defer close(sent)
		chunk := make([]byte, 16<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	close(stop)
	<-sent
	if err != nil {
		t.Fatalf("reading the answer: %v after %d of %d bytes", err, len(got), len(answer))
	}
	if !bytes.Equal(got, answer) {
		t.Fatalf("got %d bytes, want the %d-byte answer", len(got), len(answer))
	}
	_ = c.Close()
	if err := <-done; err != nil {
		t.Fatalf("LingerClose: %v", err)
	}
}
