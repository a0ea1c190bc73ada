package protocol

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkAppendFrame(b *testing.B) {
	f := sampleFrame()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(f.Size()))
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], f)
	}
}

func BenchmarkDecode(b *testing.B) {
	enc, _ := AppendFrame(nil, sampleFrame())
	var f Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if err := Decode(enc, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamReadFrame(b *testing.B) {
	var buf bytes.Buffer
	w := NewStreamConn(nopConn{&buf}, ConnOptions{})
	_ = w.Send(sampleFrame())
	_ = w.Close()
	r := NewStreamReader(&loopReader{data: buf.Bytes()}, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriterParallel(b *testing.B) {
	c := NewStreamConn(nopConn{io.Discard}, ConnOptions{})
	defer c.Close()
	frame, _ := AppendFrame(nil, sampleFrame())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.WriteFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
}
