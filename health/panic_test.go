package health

import (
	"fmt"
	"slices"
	"testing"
)

func TestInPanic(t *testing.T) {
	tests := []struct {
		healthy, total int
		threshold      float64
		want           bool
	}{
		{2, 4, 0, false}, // 50% is not fewer than 50%
		{1, 4, 0, true},
		{0, 4, 0, true},
		{4, 4, 0, false},
		{0, 0, 0, false}, // an empty pool has nothing to spread over
		{1, 3, 0.5, true},
		{2, 3, 0.5, false},
		{9, 10, 1, true}, // 100%: panic unless all are healthy
		{10, 10, 1, false},
		{0, 4, -1, false}, // disabled
		{7, 10, 0.75, true},
		{8, 10, 0.75, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d at %v", tt.healthy, tt.total, tt.threshold), func(t *testing.T) {
			if got := InPanic(tt.healthy, tt.total, tt.threshold); got != tt.want {
				t.Fatalf("InPanic = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEligible(t *testing.T) {
	pool := []string{"a", "b", "c", "d"}
	tests := []struct {
		name      string
		healthy   string // names of the healthy targets
		threshold float64
		want      []string
		panic     bool
	}{
		{"all healthy", "abcd", 0, []string{"a", "b", "c", "d"}, false},
		{"half healthy", "bd", 0, []string{"b", "d"}, false},
		{"under the threshold", "c", 0, []string{"a", "b", "c", "d"}, true},
		{"none healthy", "", 0, []string{"a", "b", "c", "d"}, true},
		{"none healthy, panic disabled", "", -1, nil, false},
		{"under the threshold, panic disabled", "c", -1, []string{"c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			healthy := func(s string) bool { return len(s) == 1 && containsRune(tt.healthy, s[0]) }
			dst := make([]string, 0, len(pool))
			got, panicking := Eligible(dst, pool, healthy, tt.threshold)
			if !slices.Equal(got, tt.want) || panicking != tt.panic {
				t.Fatalf("Eligible = %v, %v; want %v, %v", got, panicking, tt.want, tt.panic)
			}
		})
	}
}

func containsRune(s string, b byte) bool {
	for i := range len(s) {
		if s[i] == b {
			return true
		}
	}
	return false
}
