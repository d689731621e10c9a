package config

import (
	"errors"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as a config file: whatever the
// input, Load returns a config or an error, and never panics. A config it
// accepts has the invariants validation promises.
func FuzzLoad(f *testing.F) {
	f.Add(defaultsYAML)
	f.Add([]byte("node:\n  data_dir: /x\n  log: {level: debug, format: json}\n"))
	f.Add([]byte("plugins:\n  a:\n    id: store.memory\n    mode: linked\n    config: {x: [1, {y: null}]}\n"))
	f.Add([]byte("node: [\n"))
	f.Add([]byte("- 1\n"))
	f.Add([]byte("plugins: {store: null, x: 5}\napi: {tcp: '[::1]:80', token_file: t}\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		withBytes := func(l *loader) error { l.fileBytes = b; return nil }
		cfg, err := Load(WithFile(path), withBytes, WithWorkDir(dir), WithEnviron(func() []string { return nil }))
		if err != nil {
			var inv *InvalidError
			if errors.As(err, &inv) && len(inv.Problems) == 0 {
				t.Fatal("InvalidError with no problems")
			}
			return
		}
		if !filepath.IsAbs(cfg.Node.DataDir) || cfg.Node.ShutdownTimeout <= 0 {
			t.Fatalf("accepted config breaks invariants: %+v", cfg.Node)
		}
		for name, p := range cfg.Plugins {
			if p.Enabled && (p.ID == "" || p.Restart.InitialBackoff <= 0 || p.Config == nil) {
				t.Fatalf("accepted plugin %s breaks invariants: %+v", name, p)
			}
		}
	})
}
