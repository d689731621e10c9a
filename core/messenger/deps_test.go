package messenger

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetworkingDependencies fails if core/messenger depends, directly or
// not, on libp2p or boxo (the core/ rule). go-plugin comes in through the
// sdk package (sdk.Serve), whose kind interfaces are the messenger's
// contract with its store and network.
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
				t.Errorf("core/messenger depends on %s", dep)
			}
		}
	}
}
