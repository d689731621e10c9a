// Command skein is the Skein node: it runs the node daemon (`skein run`),
// prepares a data directory (`skein init`), checks configuration and
// plugins, serves its built-in plugins out of process when the node
// re-executes it (`skein plugin serve <id>`), and shows a node at work on
// embedded defaults (`skein demo`).
//
// Build it as skein (`node` is Node.js on most machines):
//
//	go build -o skein ./cmd/node
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/skein-p2p/skein/core/config"
)

// exitCode is the process exit status for an error from a command.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// exitError carries an exit status and a message already shown (or none).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the skein command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	printError(stderr, err)
	return exitCode(err)
}

// printError prints err for a human: a config error one problem per line.
func printError(w io.Writer, err error) {
	if errors.Is(err, errSilent) {
		return
	}
	var inv *config.InvalidError
	if errors.As(err, &inv) {
		fmt.Fprintf(w, "skein: invalid configuration (%d %s):\n", len(inv.Problems), plural(len(inv.Problems), "problem", "problems"))
		for _, p := range inv.Problems {
			fmt.Fprintf(w, "  %s\n", p.String())
		}
		return
	}
	fmt.Fprintf(w, "skein: %v\n", err)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
