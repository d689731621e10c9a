package store

import (
	"errors"
	"fmt"

	"github.com/skein-p2p/skein/sdk"
)

// ErrNotStarted is returned by store operations before Start succeeded. It
// matches sdk.ErrLifecycle.
var ErrNotStarted = fmt.Errorf("store not started: %w", sdk.ErrLifecycle)

// ErrClosed is returned by store operations once Stop has begun. It matches
// sdk.ErrLifecycle.
var ErrClosed = fmt.Errorf("store closed: %w", sdk.ErrLifecycle)

// ErrNotConfigured is returned by Start when Configure has not been given a
// valid config (the pebble store needs at least a path). It matches
// sdk.ErrLifecycle.
var ErrNotConfigured = fmt.Errorf("store not configured: %w", sdk.ErrLifecycle)

// ErrLocked is returned by Start when the data directory is held by another
// process (or by another open store in this one).
var ErrLocked = errors.New("data directory is locked by another process")

// ErrEmptyKey is returned for an empty key: every key has at least one
// byte. It matches sdk.ErrInvalidArgument.
var ErrEmptyKey = fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)

// errNegativeLimit is returned by Query for a negative Limit.
var errNegativeLimit = fmt.Errorf("negative limit: %w", sdk.ErrInvalidArgument)
