package demo

import "syscall"

// sysProcAttr puts a child in a process group of its own, so that Ctrl-C in
// the terminal reaches only the demo (which then stops its children in
// order), and has the kernel SIGKILL it if the demo dies without doing so.
//
// Pdeathsig fires when the thread that started the child exits; Go keeps
// its threads for the life of the process unless a goroutine exits while
// locked to one, which the demo never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
