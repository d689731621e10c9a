package client

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSocketFor(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "custom")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	tests := []struct {
		name, target, want string
	}{
		{"data directory", dir, filepath.Join(dir, SocketName)},
		{"existing file", file, file},
		{"missing .sock path", filepath.Join(dir, "x.sock"), filepath.Join(dir, "x.sock")},
		{"missing directory", filepath.Join(dir, "nope"), filepath.Join(dir, "nope", SocketName)},
		{"home", "~/.skein", filepath.Join(home, ".skein", SocketName)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SocketFor(tc.target); got != tc.want {
				t.Fatalf("SocketFor(%q) = %q, want %q", tc.target, got, tc.want)
			}
		})
	}
}

func TestDialTCPNeedsToken(t *testing.T) {
	if _, err := DialTCP("127.0.0.1:1", ""); err == nil {
		t.Fatal("DialTCP without a token succeeded")
	}
}
