//go:build !unix

package mdns

import (
	"errors"
	"syscall"
)

// reusePort: sharing port 5353 is implemented for unix systems only.
func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("mdns: sharing port 5353 is supported on unix systems only")
}
