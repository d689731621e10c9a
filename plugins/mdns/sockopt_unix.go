//go:build unix

package mdns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets the socket share port 5353 with other responders on the
// machine (avahi, another node): each gets every multicast packet.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
