//go:build !linux

package child

import (
	"errors"
	"syscall"
	"time"
)

// sysProcAttr: without Pdeathsig, a parent killed with SIGKILL leaves its
// children behind.
func sysProcAttr(ownGroup bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: ownGroup}
}

func cpuTime(int) (time.Duration, error) {
	return 0, errors.New("child: process CPU time needs /proc (Linux)")
}
