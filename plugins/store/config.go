package store

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/skein-p2p/skein/internal/bytesize"
	"github.com/skein-p2p/skein/sdk"
)

// DefaultCacheSize is the block cache size when cache_size is not set.
const DefaultCacheSize = 64 << 20

// minCacheSize is the smallest cache pebble is given; smaller values are
// rounded up (with a warning) because pebble needs room for a few blocks.
const minCacheSize = 1 << 20

// Config is the pebble store's configuration, the typed form of its config
// subtree.
type Config struct {
	// Path is the data directory. Required. Created (mode 0700) by Start.
	Path string
	// SyncWrites makes every individual Put and Delete fsync before it
	// returns. Default false: they reach the write-ahead log unsynced, and a
	// Batch with sync=true or a Sync makes them durable.
	SyncWrites bool
	// CacheSize is the block cache size in bytes. 0 means DefaultCacheSize.
	CacheSize int64
}

// Config keys of the pebble store's subtree.
const (
	KeyPath       = "path"
	KeySyncWrites = "sync_writes"
	KeyCacheSize  = "cache_size"
)

// ConfigSchema documents every key the pebble store accepts.
func ConfigSchema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyPath, Type: "string", Required: true,
			Description: "data directory; created with mode 0700 on start; one process at a time"},
		{Key: KeySyncWrites, Type: "bool", Default: "false",
			Description: "fsync every single put and delete; batches with sync=true and Sync are durable either way"},
		{Key: KeyCacheSize, Type: "string", Default: "64MiB",
			Description: `block cache size in bytes or with a unit ("64MiB", "1GB")`},
	}
}

// ParseConfig turns a config subtree into a Config. Every problem is
// reported as a diagnostic naming its key; it never panics. The Config is
// only meaningful when no diagnostic has SeverityError.
func ParseConfig(raw map[string]any) (Config, []sdk.Diagnostic) {
	var (
		cfg   Config
		diags []sdk.Diagnostic
	)
	errorf := func(key, format string, args ...any) {
		diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityError, Key: key, Message: fmt.Sprintf(format, args...)})
	}

	known := map[string]bool{KeyPath: true, KeySyncWrites: true, KeyCacheSize: true}
	unknown := make([]string, 0)
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errorf(k, "unknown key %q (known keys: path, sync_writes, cache_size)", k)
	}

	switch v := raw[KeyPath].(type) {
	case nil:
		errorf(KeyPath, "required: the data directory of the store")
	case string:
		switch {
		case strings.TrimSpace(v) == "":
			errorf(KeyPath, "must not be empty: the data directory of the store")
		case strings.ContainsRune(v, 0):
			errorf(KeyPath, "must not contain a NUL byte")
		default:
			cfg.Path = v
			if !filepath.IsAbs(v) {
				diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning, Key: KeyPath,
					Message: fmt.Sprintf("%q is relative: it is resolved against the plugin's working directory; prefer an absolute path", v)})
			}
		}
	default:
		errorf(KeyPath, "must be a string (a directory path), got %s", typeName(v))
	}

	if v, ok := raw[KeySyncWrites]; ok && v != nil {
		b, err := parseBool(v)
		if err != nil {
			errorf(KeySyncWrites, "%v", err)
		}
		cfg.SyncWrites = b
	}

	if v, ok := raw[KeyCacheSize]; ok && v != nil {
		n, err := bytesize.Parse(v)
		switch {
		case err != nil:
			errorf(KeyCacheSize, "%v", err)
		case n == 0:
			cfg.CacheSize = DefaultCacheSize
		case n < minCacheSize:
			diags = append(diags, sdk.Diagnostic{Severity: sdk.SeverityWarning, Key: KeyCacheSize,
				Message: fmt.Sprintf("%d bytes is below the 1MiB minimum; using 1MiB", n)})
			cfg.CacheSize = minCacheSize
		default:
			cfg.CacheSize = n
		}
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	return cfg, diags
}

func typeName(v any) string {
	return fmt.Sprintf("%T", v)
}

func parseBool(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		p, err := strconv.ParseBool(strings.TrimSpace(b))
		if err != nil {
			return false, fmt.Errorf("must be true or false, got %q", b)
		}
		return p, nil
	default:
		return false, fmt.Errorf("must be a bool, got %s", typeName(v))
	}
}
