package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/node"
	"github.com/skein-p2p/skein/core/pluginhost"
)

// BenchmarkNodeStartStop measures starting and stopping a node with one
// store.memory plugin: linked in, and out of process through the skein
// binary (sha256 of the binary, launch, handshake, Describe, Configure,
// Start, then Stop).
func BenchmarkNodeStartStop(b *testing.B) {
	sum, err := pluginhost.FileSHA256(skeinBin)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"linked", "process"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "skein.yaml")
			yaml := "node:\n  data_dir: data\nplugins:\n  store:\n    id: store.memory\n    mode: " + mode + "\n"
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				b.Fatal(err)
			}
			cfg, err := config.Load(config.WithFile(path))
			if err != nil {
				b.Fatal(err)
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			ctx := context.Background()
			for b.Loop() {
				n, err := node.New(cfg, node.WithLogger(logger), node.WithSelfCommand(skeinBin, sum))
				if err != nil {
					b.Fatal(err)
				}
				if err := n.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if err := n.Stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
