package main

import (
	"fmt"
	"io"
)

// runBench is replaced by the bench issue's implementation.
func runBench(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "graftlb bench: not implemented yet")
	return 2
}
