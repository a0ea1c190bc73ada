// memtool measures a graftlb proxy: slow (non-reading) clients and idle
// connections after one large frame. Stdlib only: frames are built by hand.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func frame(typ byte, callID uint32, body []byte) []byte {
	b := make([]byte, 44+len(body))
	b[0] = 1
	b[1] = typ
	binary.BigEndian.PutUint32(b[4:], callID)
	binary.BigEndian.PutUint32(b[36:], uint32(len(body)))
	copy(b[44:], body)
	return b
}

const (
	tHello = 1
	tPing  = 9
)

func dial(addr string, rcvbuf int) net.Conn {
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		if rcvbuf > 0 {
			c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		}
		return nil
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		panic(err)
	}
	return nc
}

// tcpSend writes a frame with its length prefix.
func tcpSend(nc net.Conn, f []byte) error {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(f)))
	if _, err := nc.Write(l[:]); err != nil {
		return err
	}
	_, err := nc.Write(f)
	return err
}

func tcpRecv(br *bufio.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(l[:]))
	_, err := io.ReadFull(br, b)
	return b, err
}

// wsOpen does the upgrade handshake by hand.
func wsOpen(addr string, rcvbuf int) (net.Conn, *bufio.Reader) {
	nc := dial(addr, rcvbuf)
	k := make([]byte, 16)
	rand.Read(k)
	fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, base64.StdEncoding.EncodeToString(k))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		panic(fmt.Sprint("upgrade: ", err, resp))
	}
	return nc, br
}

// wsSend sends one binary message, masked with a zero key (valid, and no
// XOR needed).
func wsSend(nc net.Conn, f []byte) error {
	h := []byte{0x82}
	n := len(f)
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n < 65536:
		h = append(h, 0x80|126, byte(n>>8), byte(n))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	h = append(h, 0, 0, 0, 0)
	if _, err := nc.Write(h); err != nil {
		return err
	}
	_, err := nc.Write(f)
	return err
}

func wsRecv(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		io.ReadFull(br, e[:])
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		io.ReadFull(br, e[:])
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	return b, err
}

func rss(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v // KiB
		}
	}
	return -1
}

func proxyConns(admin string) int {
	resp, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if v, ok := m["connections"].(float64); ok {
		return int(v)
	}
	if v, ok := m["conns"].(float64); ok {
		return int(v)
	}
	b, _ := json.Marshal(m)
	fmt.Fprintln(os.Stderr, "stats:", string(b))
	return -1
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
	ws bool
}

func open(binding, addr string, rcvbuf int, readWelcome bool) *conn {
	c := &conn{ws: binding == "ws"}
	if c.ws {
		c.nc, c.br = wsOpen(addr, rcvbuf)
	} else {
		c.nc = dial(addr, rcvbuf)
		c.br = bufio.NewReader(c.nc)
	}
	c.send(frame(tHello, 0, nil))
	if readWelcome {
		if _, err := c.recv(); err != nil {
			panic(err)
		}
	}
	return c
}

func (c *conn) send(f []byte) error {
	if c.ws {
		return wsSend(c.nc, f)
	}
	return tcpSend(c.nc, f)
}

func (c *conn) recv() ([]byte, error) {
	if c.ws {
		return wsRecv(c.br)
	}
	return tcpRecv(c.br)
}

func main() {
	mode := flag.String("mode", "slow", "slow | idle")
	binding := flag.String("binding", "tcp", "tcp | ws")
	addr := flag.String("addr", "", "proxy address for the binding")
	admin := flag.String("admin", "", "proxy admin address")
	pid := flag.Int("pid", 0, "proxy pid")
	n := flag.Int("n", 100, "connections")
	pings := flag.Int("pings", 12, "1 MiB PINGs per slow client")
	watch := flag.Duration("watch", 30*time.Second, "how long to watch")
	size := flag.Int("body", 1<<20-44-64, "PING body bytes")
	flag.Parse()
	body := make([]byte, *size)
	base := rss(*pid)
	fmt.Printf("mode=%s binding=%s n=%d: proxy RSS at start %d KiB, conns %d\n", *mode, *binding, *n, base, proxyConns(*admin))
	switch *mode {
	case "slow":
		conns := make([]*conn, *n)
		start := time.Now()
		for i := range conns {
			conns[i] = open(*binding, *addr, 4096, false)
			go func(c *conn) {
				for j := 0; j < *pings; j++ {
					if c.send(frame(tPing, uint32(j+1), body)) != nil {
						return
					}
				}
			}(conns[i])
		}
		peak := 0
		var cutAt time.Duration = -1
		for tick := 1; time.Since(start) < *watch; tick++ {
			time.Sleep(250 * time.Millisecond)
			r := rss(*pid)
			peak = max(peak, r)
			pc := proxyConns(*admin)
			if pc == 0 && cutAt < 0 {
				cutAt = time.Since(start)
				fmt.Printf("  all %d slow clients cut off after %v\n", *n, cutAt.Round(10*time.Millisecond))
			}
			if tick%8 == 0 {
				fmt.Printf("  t=%2.0fs RSS %d KiB, proxy conns %d\n", time.Since(start).Seconds(), r, pc)
			}
		}
		fmt.Printf("  peak RSS %d KiB (growth %d KiB); at end %d KiB; conns at end %d; cut off: %v\n", peak, peak-base, rss(*pid), proxyConns(*admin), cutAt)
		for _, c := range conns {
			c.nc.Close()
		}
	case "idle":
		conns := make([]*conn, *n)
		for i := range conns {
			c := open(*binding, *addr, 0, true)
			if err := c.send(frame(tPing, 1, body)); err != nil {
				panic(err)
			}
			if _, err := c.recv(); err != nil {
				panic(err)
			}
			conns[i] = c
		}
		// the first RSS sample after letting the proxy settle
		time.Sleep(3 * time.Second)
		r := rss(*pid)
		fmt.Printf("  %d idle conns after one PING of %d bytes each: RSS %d KiB, %.1f KiB per conn (conns %d)\n", *n, len(body), r, float64(r-base)/float64(*n), proxyConns(*admin))
		time.Sleep(*watch)
		r = rss(*pid)
		fmt.Printf("  after %v more: RSS %d KiB, %.1f KiB per conn\n", *watch, r, float64(r-base)/float64(*n))
		for _, c := range conns {
			c.nc.Close()
		}
	}
}
