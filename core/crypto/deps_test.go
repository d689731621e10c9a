package crypto

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetworkingDependencies fails if core/crypto depends, directly or
// not, on libp2p, boxo or go-plugin.
func TestNoNetworkingDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not available")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/libp2p/", "github.com/ipfs/boxo", "github.com/hashicorp/go-plugin"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("core/crypto depends on %s", dep)
			}
		}
	}
}
