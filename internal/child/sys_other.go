//go:build !linux

package child

import (
	"errors"
	"syscall"
	"time"
)

// sysProcAttr: without Pdeathsig, a parent killed with SIGKILL leaves its
// children behind.
func sysProcAttr(ownGroup bool, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: ownGroup}
}

func cpuTime(int) (time.Duration, error) {
	return 0, errors.New("child: process CPU time needs /proc (Linux)")
}

func treeUsage(int) (Usage, error) {
	return Usage{}, errors.New("child: process usage needs /proc (Linux)")
}

func treeListens(int, string) (bool, error) {
	return false, errors.New("child: listening sockets need /proc (Linux)")
}
