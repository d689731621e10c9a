package config

import (
	"path/filepath"
	"testing"
)

// BenchmarkLoad measures a full load: embedded defaults, a file, the
// environment and validation.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	path := writeFile(b, dir, "skein.yaml", "node:\n  data_dir: data\n  log: {level: debug}\nplugins:\n  scratch:\n    id: store.memory\n    mode: linked\n", 0o600)
	env := environ("SKEIN_NODE__LOG__FORMAT=json", "SKEIN_PLUGINS__STORE__CONFIG__CACHE_SIZE=128MiB")
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Load(WithFile(path), WithEnviron(env))
		if err != nil {
			b.Fatal(err)
		}
		if cfg.Node.DataDir != filepath.Join(dir, "data") {
			b.Fatal(cfg.Node.DataDir)
		}
	}
}
