// Command graftlb is the single graftlb binary: an embedded gateway, the
// proxy, the demo, the load generator and a one-shot call tool. DESIGN.md
// section 6 is its command-line contract; this file only wires packages
// together.
package main

import (
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"gateway", "run an embedded gateway hosting the example modules", runGateway},
		{"proxy", "run the graftlb proxy in front of a gateway pool", runProxy},
		{"demo", "show stateless and stateful scaling end to end on this machine", runDemo},
		{"bench", "load-test a target or run a scenario (scaleout, failover, drain, compare, rolling, transport)", runBench},
		{"chaos", "run random faults against a cluster it starts, checking every guarantee", runChaos},
		{"nats", "run an embedded NATS server (JetStream) for the NATS transport", runNATS},
		{"call", "make one call and print its result as JSON", runCall},
		{"healthcheck", "GET a URL: exit 0 on a 2xx answer, 1 otherwise (container HEALTHCHECK)", runHealthcheck},
		{"version", "print the module version and VCS revision", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "graftlb: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: graftlb <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'graftlb <command> -h' for a command's flags.")
}
