package client_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// fakeServer is a raw protocol server on a loopback socket, for frames a
// gateway cannot be made to send (a proxy's session-lost notice, topic
// events): it answers HELLO with WELCOME and hands each connection to the
// test, which reads and writes frames itself.
type fakeServer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *fakeConn
	wg    sync.WaitGroup

	mu   sync.Mutex
	open []*fakeConn
}

// fakeConn is one accepted connection, past its handshake.
type fakeConn struct {
	t     *testing.T
	pc    *protocol.Conn
	hello rawFrame // the HELLO
	id    protocol.SessionID
}

// rawFrame is a decoded frame with its views copied.
type rawFrame struct {
	Type                     protocol.Type
	Flags                    protocol.Flags
	CallID                   uint32
	Session                  protocol.SessionID
	Object                   uint64
	Module, TypeName, Method string
	Body                     []byte
}

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, conns: make(chan *fakeConn, 8)}
	fs.wg.Add(1)
	go fs.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		fs.mu.Lock()
		for _, fc := range fs.open {
			fc.pc.Abort()
		}
		fs.mu.Unlock()
		fs.wg.Wait()
	})
	return fs
}

func (fs *fakeServer) target() string { return "tcp://" + fs.ln.Addr().String() }

func (fs *fakeServer) accept() {
	defer fs.wg.Done()
	for {
		nc, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{t: fs.t, pc: protocol.NewStreamConn(nc, protocol.ConnOptions{})}
		fs.mu.Lock()
		fs.open = append(fs.open, fc)
		fs.mu.Unlock()
		hello, err := fc.readFrame()
		if err != nil || hello.Type != protocol.TypeHello {
			fc.pc.Abort()
			continue
		}
		fc.hello, fc.id = hello, hello.Session
		if fc.id.IsZero() {
			fc.id = protocol.NewSessionID()
		}
		body, _ := protocol.Marshal(protocol.Welcome{Server: "fake", MaxInflight: 64})
		if err := fc.pc.Send(&protocol.Frame{Type: protocol.TypeWelcome, Session: fc.id, Body: body}); err != nil {
			fc.pc.Abort()
			continue
		}
		fs.conns <- fc
	}
}

// next waits for the next connection.
func (fs *fakeServer) next() *fakeConn {
	fs.t.Helper()
	select {
	case fc := <-fs.conns:
		return fc
	case <-time.After(10 * time.Second):
		fs.t.Fatal("no connection reached the fake server")
		return nil
	}
}

func (fc *fakeConn) readFrame() (rawFrame, error) {
	_ = fc.pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := fc.pc.ReadFrame()
	if err != nil {
		return rawFrame{}, err
	}
	var f protocol.Frame
	if err := protocol.Decode(b, &f); err != nil {
		return rawFrame{}, err
	}
	return rawFrame{
		Type: f.Type, Flags: f.Flags, CallID: f.CallID, Session: f.Session, Object: f.Object,
		Module: string(f.Module), TypeName: string(f.TypeName), Method: string(f.Method),
		Body: append([]byte(nil), f.Body...),
	}, nil
}

// read returns the next frame other than PING.
func (fc *fakeConn) read() rawFrame {
	fc.t.Helper()
	for {
		f, err := fc.readFrame()
		if err != nil {
			fc.t.Fatalf("fake server read: %v", err)
		}
		if f.Type != protocol.TypePing {
			return f
		}
	}
}

func (fc *fakeConn) send(f *protocol.Frame) {
	fc.t.Helper()
	if err := fc.pc.Send(f); err != nil {
		fc.t.Fatalf("fake server send: %v", err)
	}
}

// answer replies to a CALL with a RESULT carrying v.
func (fc *fakeConn) answer(call rawFrame, v any) {
	fc.t.Helper()
	body, err := protocol.Marshal(v)
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.send(&protocol.Frame{Type: protocol.TypeResult, CallID: call.CallID, Session: call.Session, Body: body})
}

// args decodes a CALL's arguments.
func (f rawFrame) args(t *testing.T) []any {
	t.Helper()
	var a []any
	if err := protocol.Unmarshal(f.Body, &a); err != nil {
		t.Fatalf("CALL arguments: %v", err)
	}
	return a
}
