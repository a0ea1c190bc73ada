package health

import (
	"fmt"
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
