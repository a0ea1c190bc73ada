//go:build !race

package protocol

import (
	"bytes"
	"io"
	"testing"
)

// The codec is on every forwarded frame: it must not allocate.
func TestCodecAllocatesNothing(t *testing.T) {
	f := sampleFrame()
	buf := make([]byte, 0, 512)
	enc, _ := AppendFrame(nil, f)
	var g Frame
	if n := testing.AllocsPerRun(1000, func() {
		buf, _ = AppendFrame(buf[:0], f)
	}); n != 0 {
		t.Errorf("AppendFrame: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		_ = Decode(enc, &g)
	}); n != 0 {
		t.Errorf("Decode: %v allocs/op", n)
	}
	bad := append([]byte(nil), enc...)
	bad[0] = 9
	if n := testing.AllocsPerRun(1000, func() {
		_ = Decode(bad, &g)
	}); n != 0 {
		t.Errorf("Decode of a bad frame: %v allocs/op", n)
	}
	errBody := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() {
		errBody = AppendErrorBody(errBody[:0], CodeSessionLost, "gone", "")
		_, _, _, _ = DecodeErrorBody(errBody)
	}); n != 0 {
		t.Errorf("error body: %v allocs/op", n)
	}
}

func TestStreamReadWriteAllocatesNothing(t *testing.T) {
	var buf bytes.Buffer
	w := NewStreamConn(nopConn{&buf}, ConnOptions{})
	_ = w.Send(sampleFrame())
	_ = w.Close()
	r := NewStreamReader(&loopReader{data: buf.Bytes()}, 1<<20)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadFrame: %v allocs/op", n)
	}

	c := NewStreamConn(nopConn{io.Discard}, ConnOptions{})
	defer c.Close()
	frame, _ := AppendFrame(nil, sampleFrame())
	for i := 0; i < 100; i++ { // let the batch buffers grow
		_ = c.WriteFrame(frame)
	}
	if n := testing.AllocsPerRun(1000, func() {
		_ = c.WriteFrame(frame)
	}); n > 0.01 {
		t.Errorf("WriteFrame: %v allocs/op", n)
	}
}
