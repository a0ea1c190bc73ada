package child

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr has the kernel signal the child when the parent dies
// (death, default SIGKILL), so that a killed bench or demo leaves no
// gateways behind. Pdeathsig fires
// when the thread that started the child exits; Go keeps its threads for
// the life of the process unless a goroutine exits while locked to one,
// which graftlb never does.
func sysProcAttr(ownGroup bool, death syscall.Signal) *syscall.SysProcAttr {
	if death == 0 {
		death = syscall.SIGKILL
	}
	return &syscall.SysProcAttr{Setpgid: ownGroup, Pdeathsig: death}
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on every
// Linux architecture Go supports).
const userHZ = 100

// cpuTime reads utime + stime, fields 14 and 15 of /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	return st.cpu, err
}

// stat is what graftlb reads of /proc/PID/stat.
type stat struct {
	ppid int
	cpu  time.Duration // utime + stime
	rss  int64         // bytes
}

// readStat reads /proc/PID/stat (proc(5)): fields 4 (ppid), 14 and 15
// (utime, stime) and 24 (rss, in pages), counted after the command name,
// which may hold spaces.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("child: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 22 {
		return stat{}, fmt.Errorf("child: /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var n [4]int64
	for j, k := range []int{1, 11, 12, 21} {
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return stat{}, fmt.Errorf("child: /proc/%d/stat: %w", pid, err)
		}
	}
	return stat{
		ppid: int(n[0]),
		cpu:  time.Duration(n[1]+n[2]) * time.Second / userHZ,
		rss:  n[3] * int64(os.Getpagesize()),
	}, nil
}

// tree returns pid and every live process descended from it, found by
// their parent ids in /proc, with their stat.
func tree(pid int) ([]int, map[int]stat, error) {
	root, err := readStat(pid)
	if err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, nil, err
	}
	stats := map[int]stat{pid: root}
	kids := map[int][]int{}
	for _, e := range ents {
		q, err := strconv.Atoi(e.Name())
		if err != nil || q == pid {
			continue
		}
		st, err := readStat(q)
		if err != nil {
			continue // it exited while we looked
		}
		stats[q] = st
		kids[st.ppid] = append(kids[st.ppid], q)
	}
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, kids[pids[i]]...)
	}
	return pids, stats, nil
}

// treeUsage adds up the stat of pid and of its live descendants.
func treeUsage(pid int) (Usage, error) {
	pids, stats, err := tree(pid)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, q := range pids {
		u.CPU += stats[q].cpu
		u.RSS += stats[q].rss
		u.Procs++
	}
	return u, nil
}

// treeListens reports whether pid or a descendant holds the listening
// TCP socket on addr (an IPv4 host:port): its inode, from /proc/net/tcp,
// is among their open files.
func treeListens(pid int, addr string) (bool, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return false, fmt.Errorf("child: listens on %q: want an IPv4 host:port", addr)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	// local_address is the address's 4 bytes read as a word in the
	// machine's byte order, in hex, then the port in hex.
	a := ap.Addr().As4()
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a[:]), ap.Port())
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return false, nil
	}
	pids, _, err := tree(pid)
	if err != nil {
		return false, err
	}
	want := "socket:[" + inode + "]"
	for _, q := range pids {
		dir := "/proc/" + strconv.Itoa(q) + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
				return true, nil
			}
		}
	}
	return false, nil
}
