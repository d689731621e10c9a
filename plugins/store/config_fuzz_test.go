package store

import (
	"strings"
	"testing"

	"github.com/skein-p2p/skein/sdk"
)

// FuzzParseConfig: config values come from files, the environment and the
// wire; no string may crash the parser, and every rejection names its key.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"64MiB", "1.5 GB", "0", "-1", "1e400", "NaN", ".", "9999999999999999999999TiB", "12 k", "true"} {
		f.Add("/data", s, s)
	}
	f.Fuzz(func(t *testing.T, path, cacheSize, syncWrites string) {
		cfg, diags := ParseConfig(map[string]any{"path": path, "cache_size": cacheSize, "sync_writes": syncWrites})
		ok := true
		for _, d := range diags {
			if d.Key == "" || d.Message == "" {
				t.Fatalf("diagnostic without key or message: %+v", d)
			}
			if d.Severity == sdk.SeverityError {
				ok = false
			}
		}
		if ok && (cfg.CacheSize < minCacheSize || cfg.Path == "" || strings.ContainsRune(cfg.Path, 0)) {
			t.Fatalf("accepted config %+v from (%q, %q, %q)", cfg, path, cacheSize, syncWrites)
		}
	})
}
