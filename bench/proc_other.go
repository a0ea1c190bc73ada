//go:build !linux

package bench

func loadAverage() (float64, bool) { return 0, false }
