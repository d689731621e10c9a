package config

import (
	"errors"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every *InvalidError: the configuration
// was read but is not acceptable.
var ErrInvalid = errors.New("invalid config")

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Source is where the offending value came from: a file path,
	// "env VAR", "flag --name" or "defaults".
	Source string
	// Key is the dotted key path, e.g. "plugins.store.sha256"; empty for a
	// problem with the source as a whole (a file that is not YAML).
	Key string
	// Message says what is wrong, and where it helps, what to do.
	Message string
}

// String formats the problem as "config SOURCE: KEY: MESSAGE".
func (p Problem) String() string {
	if p.Key == "" {
		return "config " + p.Source + ": " + p.Message
	}
	return "config " + p.Source + ": " + p.Key + ": " + p.Message
}

// InvalidError lists every problem found, in a stable order.
type InvalidError struct {
	Problems []Problem
	// Partial is the configuration as far as it could be decoded despite
	// the problems (nil when a source could not be read at all, such as a
	// file that is not YAML). Its values may be invalid: it is for checks
	// that report every problem at once (skein config check runs the
	// plugins' own checks on it), never to run a node with.
	Partial *Config
}

// Error returns one problem per line.
func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports that an *InvalidError matches ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }
