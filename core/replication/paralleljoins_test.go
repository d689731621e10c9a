package replication_test

import (
	"fmt"
	"testing"

	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

func TestWithParallelJoinsBounds(t *testing.T) {
	net := simnet.New()
	defer net.Close()
	for i, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {-1, false}, {1, true}, {16, true}, {1024, true}, {1025, false}} {
		nd, err := net.AddNode(fmt.Sprint("n", i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := replication.New(nd, replication.WithParallelJoins(tc.n))
		if (err == nil) != tc.ok {
			t.Fatalf("WithParallelJoins(%d): err %v, want ok %v", tc.n, err, tc.ok)
		}
		if r != nil {
			r.Close()
		}
	}
}
