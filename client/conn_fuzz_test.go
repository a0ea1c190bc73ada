package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

// fuzzSession is the session the fuzz target's server hands the client in
// WELCOME, so that seeds can address frames to it.
var fuzzSession = protocol.SessionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// FuzzConnReplies plays a server on a real loopback socket that answers
// the client's HELLO with WELCOME and then sends arbitrary bytes (a stream
// of length-prefixed frames, as the TCP binding carries) while the client
// has a call in flight: replies, errors for the call or the connection,
// events, callbacks, GOAWAY, MOVED, garbage. The client must not panic or
// hang: the call returns once the server closes, and Close returns with
// every goroutine of the client gone (goleak checks at the end).
func FuzzConnReplies(f *testing.F) {
	call := uint32(1) // the first call id a new Conn uses
	result, _ := protocol.Marshal("ok")
	args, _ := protocol.MarshalArgs("x", protocol.CallbackRef(3))
	topic, _ := protocol.MarshalArgs("news", "payload")
	for _, frames := range [][]protocol.Frame{
		{{Type: protocol.TypeResult, CallID: call, Session: fuzzSession, Body: result}},
		{{Type: protocol.TypeError, CallID: call, Body: protocol.AppendErrorBody(nil, protocol.CodeAppException, "boom", "ValueError")}},
		{{Type: protocol.TypeError, Body: protocol.AppendErrorBody(nil, protocol.CodeOverloaded, "too many", "")}},
		{{Type: protocol.TypeError, CallID: call, Body: []byte{0, 7, 0xff}}}, // a malformed error body
		{{Type: protocol.TypeEvent, Session: fuzzSession, Module: []byte(protocol.TopicModule), Method: []byte("Event"), Body: topic}},
		{{Type: protocol.TypeEvent, Session: fuzzSession, Method: []byte(protocol.EventSessionLost),
			Body: protocol.AppendErrorBody(nil, protocol.CodeSessionLost, "gateway died", "")}},
		{{Type: protocol.TypeCallback, CallID: 7, Session: fuzzSession, Object: 3, Body: args}},
		{{Type: protocol.TypePing}, {Type: protocol.TypePong}},
		{{Type: protocol.TypeGoaway, Body: protocol.AppendErrorBody(nil, protocol.CodeDraining, "draining", "")}},
		{{Type: protocol.TypeGoaway, Flags: protocol.FlagReconnect}},
		{{Type: protocol.TypeMoved, Session: fuzzSession,
			Body: protocol.AppendErrorBody(nil, protocol.CodeMoved, "moved", "tcp://127.0.0.1:1")}},
		{{Type: protocol.TypeWelcome}, {Type: protocol.TypeHello}, {Type: protocol.Type(99)}},
	} {
		var stream []byte
		for i := range frames {
			stream = appendPrefixed(stream, &frames[i])
		}
		f.Add(stream)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	srv := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		defer srv.next(stream).Wait() // this input's connections

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "tcp://"+srv.ln.Addr().String(), client.Options{DialTimeout: 2 * time.Second, PingInterval: -1})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		_, err = c.Session().Call(ctx, "orders@1.Orders.GetOrder", "o-1")
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, protocol.ErrDeadlineExceeded) {
			t.Fatalf("the call did not return after the server closed: %v", err)
		}
		closed := make(chan struct{})
		go func() {
			_ = c.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
	})
}

// fuzzServer is the server FuzzConnReplies plays: one listener for all
// the inputs of a fuzzing process (a listener per input ran the port range
// dry within a minute on a busy machine: bind: address already in use).
// Every connection's HELLO is answered with WELCOME; the first connection
// after next gets that input's stream and its write side closed. Each
// connection is read to its end, then closed with a reset: a fuzzer's
// thousands of connections a second would otherwise fill the port range
// with TIME_WAIT sockets.
type fuzzServer struct {
	ln      net.Listener
	welcome []byte
	mu      sync.Mutex
	stream  []byte          // the input's, until a connection takes it
	fresh   bool            // no connection has taken stream yet
	input   *sync.WaitGroup // the connections accepted since next
	all     sync.WaitGroup  // every connection, for the end of the run
}

// startFuzzServer listens and serves until f ends.
func startFuzzServer(f *testing.F) *fuzzServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	welcome, _ := protocol.Marshal(protocol.Welcome{Server: "fuzz", MaxInflight: 16})
	s := &fuzzServer{ln: ln, input: new(sync.WaitGroup), welcome: appendPrefixed(nil, &protocol.Frame{Type: protocol.TypeWelcome, Session: fuzzSession, Body: welcome})}
	var loop sync.WaitGroup
	loop.Add(1)
	go func() {
		defer loop.Done()
		s.serve()
	}()
	f.Cleanup(func() {
		_ = ln.Close()
		loop.Wait()
		s.all.Wait()
	})
	return s
}

// next makes stream what the next connection gets after its WELCOME, and
// returns the group of the connections accepted from then on (a fresh
// one per input: a WaitGroup is not to be added to while it is waited on).
func (s *fuzzServer) next(stream []byte) *sync.WaitGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stream, s.fresh, s.input = stream, true, new(sync.WaitGroup)
	return s.input
}

func (s *fuzzServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		input := s.input
		input.Add(1)
		s.mu.Unlock()
		s.all.Add(1)
		go func() {
			defer s.all.Done()
			defer input.Done()
			s.handle(nc)
		}()
	}
}

func (s *fuzzServer) handle(nc net.Conn) {
	_ = nc.(*net.TCPConn).SetLinger(0)
	defer func() { _ = nc.Close() }()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	if _, err := io.ReadFull(nc, n[:]); err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, nc, int64(binary.BigEndian.Uint32(n[:]))); err != nil {
		return // not the HELLO the client sends first
	}
	s.mu.Lock()
	first := s.fresh
	s.fresh = false
	out := append([]byte(nil), s.welcome...)
	if first {
		out = append(out, s.stream...)
	}
	s.mu.Unlock()
	if _, err := nc.Write(out); err != nil {
		return
	}
	if first {
		_ = nc.(*net.TCPConn).CloseWrite()
	}
	_, _ = io.Copy(io.Discard, nc)
}

// appendPrefixed appends f as the TCP binding carries it: length, frame.
func appendPrefixed(dst []byte, f *protocol.Frame) []byte {
	b, err := protocol.AppendFrame(nil, f)
	if err != nil {
		panic(err)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
