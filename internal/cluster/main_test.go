package cluster

import (
	"testing"

	"github.com/graftlb/graftlb/internal/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(proctest.Cleanup))
}
