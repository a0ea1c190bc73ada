package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/client"
)

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n * 1024
		}
	}
	return -1
}

func stats(admin string) map[string]any {
	r, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		return nil
	}
	defer r.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(r.Body).Decode(&m)
	return m
}

func main() {
	target := flag.String("target", "", "tcp://...")
	admin := flag.String("admin", "", "admin addr")
	pid := flag.Int("pid", 0, "proxy pid")
	dur := flag.Duration("duration", time.Minute, "")
	workers := flag.Int("workers", 4, "")
	flag.Parse()
	before := rss(*pid)
	var n, failed atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(*dur)
	ctx := context.Background()
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				c, err := client.Dial(ctx, *target, client.Options{})
				if err != nil {
					failed.Add(1)
					continue
				}
				if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
					failed.Add(1)
				}
				_ = c.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	after := rss(*pid)
	time.Sleep(10 * time.Second)
	later := rss(*pid)
	fmt.Printf("connections %d failed %d in %v; proxy RSS before %.1f MB, after %.1f MB, 10 s later %.1f MB; per closed connection %.1f B\n",
		n.Load(), failed.Load(), *dur, float64(before)/1e6, float64(after)/1e6, float64(later)/1e6, float64(later-before)/float64(n.Load()))
	fmt.Println("stats:", stats(*admin))
}
