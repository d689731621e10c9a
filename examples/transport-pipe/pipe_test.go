package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// buildPlugin builds this directory as its own binary, as an author would.
func buildPlugin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "transport-pipe")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	return bin
}

func TestPipeLinkedIn(t *testing.T) {
	p := New()
	plugintest.StartLinked(t, p, nil)
	plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return p, "" })
}

func TestPipeLifecycle(t *testing.T) {
	plugintest.TestPlugin(t, func(testing.TB) sdk.Plugin { return New() })
}

func TestPipeBinaryThroughHandshake(t *testing.T) {
	bin := buildPlugin(t)
	cases := []struct {
		name  string
		plane sdk.DataPlane
	}{
		{"socket", sdk.DataPlaneSocket},
		{"stream", sdk.DataPlaneStream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rp := plugintest.StartBinary(t, bin, plugintest.WithDataPlane(tc.plane))
			d, ok := rp.Description()
			if !ok || d.ID != "transport.pipe" {
				t.Fatalf("description = %+v, %v", d, ok)
			}
			tr, ok := rp.Transport()
			if !ok {
				t.Fatal("plugin does not serve a transport")
			}
			plugintest.TestTransport(t, func(testing.TB) (sdk.Transport, string) { return tr, "" })
		})
	}
}

func TestPipeConfigDiagnostics(t *testing.T) {
	cases := []struct {
		name    string
		cfg     map[string]any
		wantKey string
	}{
		{"wrong type", map[string]any{"dir": 3}, "dir"},
		{"relative path", map[string]any{"dir": "rel/dir"}, "dir"},
		{"unknown key", map[string]any{"colour": "blue"}, "colour"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			diags, err := New().Configure(t.Context(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(diags) != 1 || diags[0].Key != tc.wantKey || diags[0].Severity != sdk.SeverityError {
				t.Fatalf("diagnostics = %+v, want one error on %q", diags, tc.wantKey)
			}
		})
	}
}
