package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	pluginNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	pluginIDRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// validate checks values after decoding and makes paths absolute.
func (l *loader) validate(cfg *Config) {
	n := &cfg.Node
	if n.DataDir == "" {
		l.problem("node.data_dir", "must not be empty")
	} else {
		n.DataDir = l.resolvePath("node.data_dir", n.DataDir)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, n.Log.Level) {
		l.problem("node.log.level", "%q is not a level: use debug, info, warn or error", n.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, n.Log.Format) {
		l.problem("node.log.format", "%q is not a format: use text or json", n.Log.Format)
	}
	if n.ShutdownTimeout <= 0 {
		l.problem("node.shutdown_timeout", "must be positive, got %s", n.ShutdownTimeout)
	}

	a := &cfg.API
	if a.Socket == "" {
		if n.DataDir != "" {
			a.Socket = filepath.Join(n.DataDir, "skein.sock")
		}
	} else {
		a.Socket = l.resolvePath("api.socket", a.Socket)
	}
	if len(a.Socket) > maxSocketPath {
		l.problem("api.socket", "path %s is %d bytes, longer than a unix socket path may be (%d): choose a shorter path", a.Socket, len(a.Socket), maxSocketPath)
	}
	if a.TCP != "" {
		if err := checkListenAddr(a.TCP); err != nil {
			l.problem("api.tcp", "%v", err)
		}
		if a.TokenFile == "" {
			l.problemFrom("api.token_file", "api.tcp", "required when api.tcp is set: TCP clients must present a token")
		}
	}
	if a.TokenFile != "" {
		a.TokenFile = l.resolvePath("api.token_file", a.TokenFile)
	}

	if m := cfg.Metrics.Listen; m != "" {
		if err := checkListenAddr(m); err != nil {
			l.problem("metrics.listen", "%v", err)
		}
	} else if cfg.Metrics.Pprof {
		l.problemFrom("metrics.listen", "metrics.pprof", "required when metrics.pprof is true: the profiles are served on it")
	}

	r := &cfg.Replication
	if r.AntiEntropyInterval < 100*time.Millisecond {
		l.problem("replication.anti_entropy_interval", "must be at least 100ms, got %s", r.AntiEntropyInterval)
	}
	if r.MissingRetry != 0 && (r.MissingRetry < 100*time.Millisecond || r.MissingRetry > time.Minute) {
		l.problem("replication.missing_retry", "want 0 (off) or 100ms to 1m, got %s", r.MissingRetry)
	}
	if r.RendezvousInterval != 0 && r.RendezvousInterval < time.Second {
		l.problem("replication.rendezvous_interval", "want 0 (off) or at least 1s, got %s", r.RendezvousInterval)
	}
	if r.MaxGroups < 1 {
		l.problem("replication.max_groups", "must be at least 1, got %d", r.MaxGroups)
	}
	if r.SecretFile == "" {
		if n.DataDir != "" {
			r.SecretFile = filepath.Join(n.DataDir, "replication.secret")
		}
	} else {
		r.SecretFile = l.resolvePath("replication.secret_file", r.SecretFile)
	}

	for _, name := range slices.Sorted(maps.Keys(cfg.Plugins)) {
		p := cfg.Plugins[name]
		l.validatePlugin(name, &p)
		if p.Config != nil {
			p.Config, _ = expandDataDir(p.Config, n.DataDir).(map[string]any)
		}
		cfg.Plugins[name] = p
	}
}

func (l *loader) validatePlugin(name string, p *Plugin) {
	key := func(k string) string { return "plugins." + name + "." + k }
	if !pluginNameRE.MatchString(name) {
		l.problem("plugins."+name, "plugin name %q must match [a-z][a-z0-9_]* (it is also an environment variable part)", name)
	}
	if !p.Enabled {
		return
	}
	switch {
	case p.ID == "":
		l.problemFrom(key("id"), "plugins."+name, "required: the plugin's namespaced ID, e.g. store.pebble")
	case !pluginIDRE.MatchString(p.ID):
		l.problem(key("id"), "%q is not a plugin ID: use <kind>.<name> in lower case, e.g. store.pebble", p.ID)
	}
	switch p.Mode {
	case ModeProcess, ModeLinked, ModeReattach:
	default:
		l.problem(key("mode"), "%q is not a mode: use process, linked or reattach", p.Mode)
	}
	builtin := l.builtins == nil || slices.Contains(l.builtins, p.ID)
	switch {
	case p.Mode == ModeReattach:
		if p.Reattach == "" {
			l.problemFrom(key("reattach"), key("mode"), "required with mode: reattach: the JSON the plugin printed after SKEIN_PLUGIN_REATTACH=")
		}
		if p.Path != "" {
			l.problem(key("path"), "not used with mode: reattach (the plugin is already running)")
		}
	case p.Reattach != "":
		l.problem(key("reattach"), "only used with mode: reattach")
	}
	if p.Path == "" {
		if !builtin && p.ID != "" && p.Mode != ModeReattach {
			l.problem(key("id"), "%s is not built into this binary (built in: %s): set %s to load it from a binary", p.ID, strings.Join(l.builtins, ", "), key("path"))
		}
		if p.SHA256 != "" {
			l.problem(key("sha256"), "only checked for a binary given by path; a built-in runs from the skein binary itself")
		}
		if len(p.Args) > 0 {
			l.problem(key("args"), "only passed to a binary given by path")
		}
	} else if p.Mode != ModeReattach {
		if p.Mode == ModeLinked {
			l.problem(key("path"), "a linked plugin is built in and has no binary: remove path or use mode: process")
		}
		p.Path = l.resolvePath(key("path"), p.Path)
		if err := checkExecutable(p.Path); err != nil {
			l.problem(key("path"), "%v", err)
		}
		if p.SHA256 == "" && p.Mode == ModeProcess {
			l.problemFrom(key("sha256"), key("path"), "required with path: the binary's sha256 (print it with sha256sum %s); an unchecked binary is not run", p.Path)
		}
	}
	if p.SHA256 != "" {
		if len(p.SHA256) != 64 || !isLowerHex(p.SHA256) {
			l.problem(key("sha256"), "not a sha256 hex digest (64 characters 0-9a-f, as printed by sha256sum)")
		}
	}
	for i, e := range p.PassEnv {
		if !envNameRE.MatchString(e) {
			l.problem(fmt.Sprintf("%s[%d]", key("pass_env"), i), "%q is not an environment variable name", e)
		}
	}
	for _, e := range slices.Sorted(maps.Keys(p.Env)) {
		if !envNameRE.MatchString(e) {
			l.problem(key("env."+e), "%q is not an environment variable name", e)
		}
	}
	if p.StartTimeout <= 0 {
		l.problem(key("start_timeout"), "must be positive, got %s", p.StartTimeout)
	}
	if p.StopTimeout <= 0 {
		l.problem(key("stop_timeout"), "must be positive, got %s", p.StopTimeout)
	}
	if p.Restart.InitialBackoff <= 0 {
		l.problem(key("restart.initial_backoff"), "must be positive, got %s", p.Restart.InitialBackoff)
	}
	if p.Restart.MaxBackoff < p.Restart.InitialBackoff {
		l.problem(key("restart.max_backoff"), "%s is less than restart.initial_backoff %s", p.Restart.MaxBackoff, p.Restart.InitialBackoff)
	}
}

func isLowerHex(s string) bool {
	if _, err := hex.DecodeString(s); err != nil {
		return false
	}
	return strings.ToLower(s) == s
}

// resolvePath expands "~/" and makes path absolute against the directory of
// the source that set key.
func (l *loader) resolvePath(key, path string) string {
	if path == "~" || strings.HasPrefix(path, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			l.problem(key, "cannot expand ~: %v", err)
			return path
		}
		path = filepath.Join(home, strings.TrimPrefix(path, "~"))
	}
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(l.sources.lookup(key).dir, path)
}

// checkExecutable reports why path is not a runnable plugin binary.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("plugin binary %s does not exist", path)
	case err != nil:
		return fmt.Errorf("plugin binary %s: %w", path, err)
	case fi.IsDir():
		return fmt.Errorf("plugin binary %s is a directory", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("plugin binary %s is not executable (chmod +x it)", path)
	}
	return nil
}

// checkListenAddr accepts host:port with an IP literal or "localhost" and a
// port 0-65535.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not a host:port address: %v", addr, err)
	}
	if host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address or localhost, got %q", addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number 0-65535, got %q", addr, port)
	}
	return nil
}

// DataDirVar in a string of a plugin's config subtree stands for the node's
// data directory.
const DataDirVar = "${node.data_dir}"

// expandDataDir returns v with DataDirVar replaced in every string.
func expandDataDir(v any, dataDir string) any {
	switch t := v.(type) {
	case string:
		return strings.ReplaceAll(t, DataDirVar, dataDir)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = expandDataDir(e, dataDir)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = expandDataDir(e, dataDir)
		}
		return out
	}
	return v
}
