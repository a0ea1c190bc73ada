//go:build !linux

package bench

import (
	"errors"
	"syscall"
	"time"
)

func procAttr() *syscall.SysProcAttr { return nil }

func cpuTime(int) (time.Duration, error) {
	return 0, errors.New("bench: process CPU time needs /proc (Linux)")
}

func loadAverage() (float64, bool) { return 0, false }
