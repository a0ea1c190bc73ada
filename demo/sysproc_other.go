//go:build !linux

package demo

import "syscall"

// sysProcAttr has nothing to add outside Linux: without Pdeathsig, a demo
// killed with SIGKILL leaves its children behind, and Ctrl-C reaches them
// directly (they drain and exit).
func sysProcAttr() *syscall.SysProcAttr { return nil }
