package gatewaytest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/graftlb/graftlb/protocol"
	proxyproto "github.com/pires/go-proxyproto"
)

// DialWithHeader connects from local IP from to addr and sends a PROXY
// protocol header (version 1 or 2) naming client as the source; version 0
// sends none. The connection is closed when the test ends.
func DialWithHeader(tb testing.TB, from, addr, client string, version byte) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: Timeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	if version == 0 {
		return nc
	}
	src := &net.TCPAddr{IP: net.ParseIP(client), Port: 40000}
	h := proxyproto.HeaderProxyFromAddrs(version, src, nc.RemoteAddr())
	if _, err := h.WriteTo(nc); err != nil {
		tb.Fatal(err)
	}
	return nc
}

// WelcomeOver says HELLO over nc (TCP binding) and returns WELCOME's
// server name, or an error if the connection is refused or closed.
func WelcomeOver(nc net.Conn) (string, error) {
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{})
	defer pc.Abort()
	body, _ := protocol.Marshal(protocol.Hello{Client: "gatewaytest"})
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body}); err != nil {
		return "", err
	}
	_ = pc.SetReadDeadline(time.Now().Add(Timeout))
	raw, err := pc.ReadFrame()
	if err != nil {
		return "", err
	}
	var f protocol.Frame
	if err := protocol.Decode(raw, &f); err != nil {
		return "", err
	}
	if f.Type != protocol.TypeWelcome {
		return "", fmt.Errorf("got %s", f.Type)
	}
	var w protocol.Welcome
	err = protocol.Unmarshal(f.Body, &w)
	return w.Server, err
}
