package protocol

import (
	"syscall"
	"unsafe"
)

// unread returns how many bytes the kernel holds unread for the socket
// (SIOCINQ); 0 when it cannot tell.
func unread(rc syscall.RawConn) int {
	var n int32
	_ = rc.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
			n = 0
		}
	})
	return int(n)
}
