package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Mode says how the host runs a plugin.
type Mode int

// Plugin run modes.
const (
	// ModeProcess launches Spec.Command as a child process and talks to it
	// over go-plugin gRPC. The default.
	ModeProcess Mode = iota
	// ModeLinked runs the plugin registered under Spec.ID in the host's own
	// process. No isolation: a panic in the plugin is a panic in the node.
	ModeLinked
	// ModeReattach attaches to a plugin started by hand in debug mode, from
	// the reattach line it printed (Spec.Reattach). The host cannot restart
	// it; when it exits, its calls fail with ErrPluginStopped.
	ModeReattach
)

// String names the mode as in config ("process", "linked", "reattach").
func (m Mode) String() string {
	switch m {
	case ModeProcess:
		return "process"
	case ModeLinked:
		return "linked"
	case ModeReattach:
		return "reattach"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode is the inverse of Mode.String.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "process", "":
		return ModeProcess, nil
	case "linked":
		return ModeLinked, nil
	case "reattach":
		return ModeReattach, nil
	}
	return 0, fmt.Errorf("plugin mode %q: want process, linked or reattach", s)
}

// Defaults applied to a zero field of Spec or RestartPolicy.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultStopTimeout  = 5 * time.Second
	DefaultBackoffBase  = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultStableAfter  = time.Minute
)

// DefaultCallTimeout is how long a call whose context has no deadline waits
// for a crashed plugin to come back before failing with ErrPluginRestarting.
const DefaultCallTimeout = 10 * time.Second

// DefaultPassEnv lists the host environment variables every plugin process
// gets (when set in the host). Everything else must be named in
// Spec.PassEnv or set in Spec.Env: the host's environment, which may hold
// secrets, does not reach plugins.
var DefaultPassEnv = []string{"PATH", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE"}

// RestartPolicy says how a crashed plugin is restarted: after
// Base, 2*Base, 4*Base ... capped at Max; the sequence starts again from
// Base once a restarted plugin has run for StableAfter.
type RestartPolicy struct {
	// Disabled turns restarts off: a crashed plugin stays down and its
	// calls fail with ErrPluginStopped. Default false.
	Disabled bool
	// Base is the first delay (default DefaultBackoffBase).
	Base time.Duration
	// Max caps the delay (default DefaultBackoffMax).
	Max time.Duration
	// StableAfter is how long a plugin must run before the backoff resets
	// (default DefaultStableAfter).
	StableAfter time.Duration
}

// Spec says how to run one plugin. Zero durations take the defaults above.
type Spec struct {
	// Name names the plugin in logs ("plugin" attribute), errors and config
	// keys (plugins.<Name>). Required.
	Name string
	// ID is the plugin's namespaced ID ("store.pebble"). Required in
	// ModeLinked (the registry key). In the other modes, when set, the
	// plugin's Describe must report the same ID or the plugin is refused.
	ID string
	// Mode picks process (default), linked or reattach.
	Mode Mode
	// Command is the plugin executable (ModeProcess). A relative path is
	// taken relative to the current directory. To run a built-in plugin out
	// of process, Command is the skein binary itself (see SelfCommand) and
	// Args is ["plugin", "serve", "<id>"].
	Command string
	// Args are the arguments after the program name.
	Args []string
	// SHA256 is the lowercase hex sha256 of Command (ModeProcess,
	// required). The binary is hashed before each launch and not started on
	// a mismatch.
	SHA256 string
	// Env sets variables in the plugin's environment (NAME -> value).
	Env map[string]string
	// PassEnv names host variables passed through to the plugin, besides
	// DefaultPassEnv.
	PassEnv []string
	// Reattach is the JSON document a debug-mode plugin printed after
	// "SKEIN_PLUGIN_REATTACH=" (ModeReattach, required).
	Reattach string
	// Config is the plugin's config subtree, given to Configure on every
	// (re)start.
	Config map[string]any
	// DataPlane forces the transport data plane of an out-of-process
	// transport (default auto: socket mode when offered).
	DataPlane sdk.DataPlane
	// StartTimeout bounds the launch and handshake, and separately each of
	// Describe, Configure and Start.
	StartTimeout time.Duration
	// StopTimeout bounds the graceful Stop; then the process is killed.
	StopTimeout time.Duration
	// Restart is the crash restart policy.
	Restart RestartPolicy
}

func (s Spec) withDefaults() Spec {
	if s.StartTimeout <= 0 {
		s.StartTimeout = DefaultStartTimeout
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.Restart.Base <= 0 {
		s.Restart.Base = DefaultBackoffBase
	}
	if s.Restart.Max <= 0 {
		s.Restart.Max = DefaultBackoffMax
	}
	if s.Restart.Max < s.Restart.Base {
		s.Restart.Max = s.Restart.Base
	}
	if s.Restart.StableAfter <= 0 {
		s.Restart.StableAfter = DefaultStableAfter
	}
	return s
}

// validate checks the fields the mode needs.
func (s Spec) validate() error {
	if s.Name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalidSpec)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("plugin %s: %w: %s", s.Name, ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("env name %q is not a valid variable name", k)
		}
	}
	for _, k := range s.PassEnv {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("pass_env name %q is not a valid variable name", k)
		}
	}
	switch s.Mode {
	case ModeProcess:
		if s.Command == "" {
			return bad("no binary; set plugins.%s.path", s.Name)
		}
		if s.SHA256 == "" {
			return bad("sha256 is empty; set plugins.%s.sha256 (sha256sum of the binary)", s.Name)
		}
		if _, err := decodeSHA256(s.SHA256); err != nil {
			return bad("sha256: %v", err)
		}
	case ModeLinked:
		if s.ID == "" {
			return bad("linked mode needs the plugin id")
		}
	case ModeReattach:
		if s.Reattach == "" {
			return bad("reattach mode needs the %s line the plugin printed", sdk.ReattachEnv)
		}
	default:
		return bad("unknown mode %d", int(s.Mode))
	}
	return nil
}

func decodeSHA256(h string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(h))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%q is not 64 hex digits", h)
	}
	return b, nil
}

// FileSHA256 returns the lowercase hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileID identifies a file's content cheaply (fileIdentity).
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// sums caches the sha256 of binaries by path, valid while the file's
// identity (fileIdentity) is unchanged: a restart or a second plugin
// served by the same binary does not hash tens of megabytes again, while
// a binary rewritten or replaced since is hashed (and checked) anew.
var sums struct {
	mu sync.Mutex
	m  map[string]cachedSum
}

type cachedSum struct {
	id  fileID
	sum string
}

// binarySHA256 is FileSHA256 through the sums cache.
func binarySHA256(path string) (string, error) {
	id, ok := fileIdentity(path)
	if ok {
		sums.mu.Lock()
		c, hit := sums.m[path]
		sums.mu.Unlock()
		if hit && c.id == id {
			return c.sum, nil
		}
	}
	sum, err := FileSHA256(path)
	if err != nil || !ok {
		return sum, err
	}
	// Cache only a file that did not change while it was hashed and whose
	// last change is older than any timestamp granularity (some file
	// systems keep times in coarse ticks): a later rewrite then always
	// shows in its times.
	stable := time.Since(time.Unix(0, id.ctime)) > time.Second && time.Since(time.Unix(0, id.mtime)) > time.Second
	if after, ok := fileIdentity(path); ok && after == id && stable {
		sums.mu.Lock()
		if sums.m == nil {
			sums.m = map[string]cachedSum{}
		}
		sums.m[path] = cachedSum{id: id, sum: sum}
		sums.mu.Unlock()
	}
	return sum, nil
}

// checkBinary hashes the binary (or takes its cached hash, see sums) and
// compares with the spec; the error is meant for an operator and names
// the config key to change.
func checkBinary(s Spec) error {
	want, err := decodeSHA256(s.SHA256)
	if err != nil {
		return fmt.Errorf("plugin %s: sha256: %w", s.Name, err)
	}
	got, err := binarySHA256(s.Command)
	if err != nil {
		return fmt.Errorf("plugin %s: hash binary: %w", s.Name, err)
	}
	if got != hex.EncodeToString(want) {
		return fmt.Errorf("plugin %s: %w: expected %s, got %s; update plugins.%s.sha256 in config",
			s.Name, ErrChecksumMismatch, hex.EncodeToString(want), got, s.Name)
	}
	return nil
}

var self struct {
	once     sync.Once
	path     string
	checksum string
	err      error
}

// SelfCommand returns the path of the running executable and its sha256,
// hashed once per process: what a Spec needs to run a built-in plugin out
// of process by re-executing the node's own binary
// (Command: path, Args: ["plugin", "serve", id], SHA256: sum).
func SelfCommand() (path, sha256Hex string, err error) {
	self.once.Do(func() {
		p, err := os.Executable()
		if err != nil {
			self.err = fmt.Errorf("find own executable: %w", err)
			return
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			self.err = fmt.Errorf("find own executable: %w", err)
			return
		}
		sum, err := FileSHA256(p)
		if err != nil {
			self.err = fmt.Errorf("hash own executable: %w", err)
			return
		}
		self.path, self.checksum = p, sum
	})
	return self.path, self.checksum, self.err
}

// pluginEnv builds the plugin's environment: the allow-listed host
// variables, then Spec.Env, then what go-plugin needs (goPluginEnv: magic
// cookie, protocol versions, ports, socket dir), which wins.
func pluginEnv(s Spec, goPluginEnv []string, lookup func(string) (string, bool)) []string {
	vals := make(map[string]string)
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, names := range [][]string{DefaultPassEnv, s.PassEnv} {
		for _, k := range names {
			if v, ok := lookup(k); ok {
				set(k, v)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		set(k, s.Env[k])
	}
	for _, kv := range goPluginEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		set(k, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env
}
