package pluginhost

import "errors"

// Sentinel errors. Every error the host returns names the plugin
// ("plugin store.pebble: ...") and wraps one of these where one applies, so
// callers test with errors.Is.
var (
	// ErrPluginCrashed is returned by a call that was in flight when the
	// plugin process died, and that was not retried (it is not idempotent,
	// or its context ended before the plugin was back).
	ErrPluginCrashed = errors.New("plugin crashed")
	// ErrPluginRestarting is returned by a call made while a crashed plugin
	// is being restarted, when the call's context ends before it is back.
	ErrPluginRestarting = errors.New("plugin is restarting")
	// ErrPluginStopped is returned by any call made after Stop, and by a
	// reattached plugin that exited (the host cannot relaunch it).
	ErrPluginStopped = errors.New("plugin stopped")
	// ErrChecksumMismatch means the plugin binary's sha256 differs from the
	// one in config. The binary was not started.
	ErrChecksumMismatch = errors.New("binary checksum mismatch")
	// ErrHandshake means the launched binary did not complete the go-plugin
	// handshake: it is not a Skein plugin, speaks another protocol version,
	// printed something else on stdout, or exited or hung during start.
	ErrHandshake = errors.New("plugin handshake failed")
	// ErrConfigRejected means the plugin's Configure returned at least one
	// error diagnostic; the plugin was not started.
	ErrConfigRejected = errors.New("plugin rejected its config")
	// ErrUnknownPlugin means a linked-in plugin ID is not registered.
	ErrUnknownPlugin = errors.New("no plugin registered under this id")
	// ErrKindNotServed means the plugin does not serve the kind asked for.
	ErrKindNotServed = errors.New("plugin does not serve this kind")
	// ErrStopTimeout means the plugin did not stop within its deadline and
	// its process was killed.
	ErrStopTimeout = errors.New("plugin did not stop within its deadline; killed")
	// ErrInvalidSpec means a Spec is incomplete or contradictory.
	ErrInvalidSpec = errors.New("invalid plugin spec")
)
