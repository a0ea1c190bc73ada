package protocol

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that Decode never panics, never returns views outside
// its input, and that a frame it accepts re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	good, _ := AppendFrame(nil, sampleFrame())
	f.Add(good)
	f.Add(good[:HeaderSize])
	f.Add(good[:len(good)-1])
	ping, _ := AppendFrame(nil, &Frame{Type: TypePing})
	f.Add(ping)
	huge := append([]byte(nil), good...)
	huge[36], huge[37], huge[38], huge[39] = 0xff, 0xff, 0xff, 0xff
	f.Add(huge)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if err := Decode(b, &fr); err != nil {
			return
		}
		out, err := AppendFrame(nil, &fr)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded frame differs:\n%x\n%x", b, out)
		}
		_, _, _, _ = DecodeErrorBody(fr.Body)
	})
}

// FuzzStreamReader feeds arbitrary bytes to the TCP binding's reader.
func FuzzStreamReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewStreamConn(nopConn{&buf}, ConnOptions{})
	_ = w.Send(sampleFrame())
	_ = w.Send(&Frame{Type: TypePing})
	_ = w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewStreamReader(bytes.NewReader(b), 4096)
		total := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				break
			}
			total += 4 + len(fr)
			if total > len(b) {
				t.Fatalf("read %d bytes of frames from %d bytes", total, len(b))
			}
			var f Frame
			_ = Decode(fr, &f)
		}
	})
}
