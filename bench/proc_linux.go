package bench

import (
	"os"
	"strconv"
	"strings"
)

// loadAverage returns the one-minute load average (/proc/loadavg), to tell
// the reader of a report how busy the machine was.
func loadAverage() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}
