package main

import (
	"fmt"
	"io"
)

// runDemo is replaced by the demo issue's implementation.
func runDemo(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "graftlb demo: not implemented yet")
	return 2
}
