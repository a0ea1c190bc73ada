package affinity_test

import (
	"fmt"
	"net"

	"github.com/graftlb/graftlb/affinity"
	"github.com/valyala/fasthttp"
)

func ExampleTable_Owner() {
	// Every proxy builds the same table from the same members, in any order.
	table, err := affinity.NewTable(affinity.UniformMembers("gw-d", "gw-c", "gw-b", "gw-a"))
	if err != nil {
		panic(err)
	}
	var id [16]byte
	copy(id[:], "graftlb-session!")
	key := affinity.HashSession(id)

	owner, _ := table.Owner(key, nil)
	fmt.Println("owner:", table.Name(owner))

	// gw-a drains: it refuses new sessions, so a new session takes the next
	// member of the key's preference list.
	draining, _ := table.Index("gw-a")
	next, _ := table.Owner(key, func(m int) bool { return m != draining })
	fmt.Println("while gw-a drains:", table.Name(next))
	// Output:
	// owner: gw-a
	// while gw-a drains: gw-b
}

func ExampleKeySource_Extract() {
	source, err := affinity.ParseKeySource("query:session")
	if err != nil {
		panic(err)
	}
	var req fasthttp.Request
	req.SetRequestURI("/ws?session=s-42")
	client := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 51000}

	key, fallback := source.Extract(nil, &req.Header, req.URI(), client)
	fmt.Printf("%s %v\n", key, fallback)

	req.SetRequestURI("/ws")
	key, fallback = source.Extract(nil, &req.Header, req.URI(), client)
	fmt.Printf("%s %v\n", key, fallback)
	// Output:
	// s-42 false
	// 192.0.2.7 true
}
