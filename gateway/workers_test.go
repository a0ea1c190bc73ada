package gateway_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/testgw"
)

// TestWorkersCapConcurrency: with Workers 2, six 200 ms calls take three
// rounds, not one: the cap makes a gateway's capacity finite.
func TestWorkersCapConcurrency(t *testing.T) {
	g := testgw.Start(t, "gw1", func(c *gateway.Config) { c.Workers = 2 })
	c, err := client.Dial(context.Background(), testgw.Targets(g)["tcp"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Session().CallStateless(context.Background(), "chaos@1.Chaos.Sleep", 200); err != nil {
				t.Error(err)
			}
		}()
	}
	begin := time.Now()
	wg.Wait()
	took := time.Since(begin)
	if took < 3*200*time.Millisecond {
		t.Errorf("six 200ms calls with 2 workers took %v, want at least 600ms", took)
	}
	t.Logf("six 200ms calls on 2 workers: %v", took)
}
