package replication_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetworkingDependencies fails if core/replication depends, directly
// or not, on libp2p or boxo: it talks to sdk.Network only.
func TestNoNetworkingDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not available")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/libp2p/", "github.com/ipfs/boxo"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("core/replication depends on %s", dep)
			}
		}
	}
}
