package child

import (
	"fmt"
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

// treeUsage adds up the stat of pid and of every live process descended
// from it, found by their parent ids in /proc.
func treeUsage(pid int) (Usage, error) {
	root, err := readStat(pid)
	if err != nil {
		return Usage{}, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, err
	}
	stats := map[int]stat{}
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
	u := Usage{CPU: root.cpu, RSS: root.rss, Procs: 1}
	for queue := kids[pid]; len(queue) > 0; queue = queue[1:] {
		q := queue[0]
		u.CPU += stats[q].cpu
		u.RSS += stats[q].rss
		u.Procs++
		queue = append(queue, kids[q]...)
	}
	return u, nil
}
