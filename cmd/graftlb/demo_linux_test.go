// Children of a killed demo are cleaned up by Pdeathsig, which only Linux has.

package main

import (
	"testing"
	"time"
)

// TestDemoKilledLeavesNoChildren SIGKILLs the demo itself: its gateways
// and proxy must not outlive it.
func TestDemoKilledLeavesNoChildren(t *testing.T) {
	d := startDemo(t, "--gateways", "3", "--duration", "10s")
	d.waitFor(t, "[1/6]")
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)
	d.checkChildrenGone(t)
}
