package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestListenReplacesOnlyStaleSockets: a socket file left by a killed
// process is replaced; a live socket and a regular file are not.
func TestListenReplacesOnlyStaleSockets(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantOK  bool
	}{
		{"stale socket", func(t *testing.T, path string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false) // as a killed process leaves it
			_ = ln.Close()
		}, true},
		{"live socket", func(t *testing.T, path string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
		}, false},
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("/tmp", "pipe-stale-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			path := filepath.Join(dir, "s.sock")
			tc.prepare(t, path)
			l, err := New().Listen(t.Context(), path)
			if (err == nil) != tc.wantOK {
				t.Fatalf("listen: %v, want success %v", err, tc.wantOK)
			}
			if l != nil {
				_ = l.Close()
			}
			if tc.name == "regular file" {
				if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
					t.Fatalf("regular file touched: %q, %v", b, err)
				}
			}
		})
	}
}
