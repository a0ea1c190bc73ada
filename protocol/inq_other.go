//go:build !linux

package protocol

import "syscall"

// unread returns 0: only Linux tells (see inq_linux.go), and then a
// WebSocket reader flushes before every message.
func unread(syscall.RawConn) int { return 0 }
