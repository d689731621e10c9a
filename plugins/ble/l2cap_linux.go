package ble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// L2CAP LE credit-based channels through kernel sockets: bluetoothd is not
// in the data path.

const (
	solBluetooth = 274 // SOL_BLUETOOTH
	btSndMTU     = 12  // BT_SNDMTU
	btRcvMTU     = 13  // BT_RCVMTU
)

// bdaddr is a Bluetooth device address and its LE type.
type bdaddr struct {
	addr   [6]byte // as written, most significant byte first
	random bool
}

func parseBDAddr(s string) (bdaddr, error) {
	var b bdaddr
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return b, fmt.Errorf("%w %q: want XX:XX:XX:XX:XX:XX", ErrBadAddress, s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return b, fmt.Errorf("%w %q: want XX:XX:XX:XX:XX:XX", ErrBadAddress, s)
		}
		b.addr[i] = byte(v)
	}
	return b, nil
}

func (b bdaddr) String() string {
	a := b.addr
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", a[0], a[1], a[2], a[3], a[4], a[5])
}

func (b bdaddr) addrType() uint8 {
	if b.random {
		return unix.BDADDR_LE_RANDOM
	}
	return unix.BDADDR_LE_PUBLIC
}

// l2capAddr is "<bdaddr>@<psm>", with "r" after the psm for a random
// device address.
func l2capAddr(b bdaddr, psm uint16) string {
	s := fmt.Sprintf("%s@%d", b, psm)
	if b.random {
		s += "r"
	}
	return s
}

func parseL2CAPAddr(s string) (bdaddr, uint16, error) {
	dev, p, ok := strings.Cut(s, "@")
	if !ok {
		return bdaddr{}, 0, fmt.Errorf("%w %q: want <bdaddr>@<psm>", ErrBadAddress, s)
	}
	b, err := parseBDAddr(dev)
	if err != nil {
		return b, 0, err
	}
	if strings.HasSuffix(p, "r") {
		b.random, p = true, p[:len(p)-1]
	}
	psm, err := strconv.ParseUint(p, 10, 16)
	if err != nil || psm == 0 || strconv.FormatUint(psm, 10) != p {
		return b, 0, fmt.Errorf("%w %q: psm %q", ErrBadAddress, s, p)
	}
	return b, uint16(psm), nil
}

// reversed turns the kernel's little-endian bdaddr (from getsockname or
// accept) into the written order.
func reversed(a [6]uint8) [6]byte {
	var r [6]byte
	for i := range a {
		r[i] = a[5-i]
	}
	return r
}

// l2capSocket makes a bound LE L2CAP socket with the receive MTU.
func l2capSocket(local bdaddr, psm uint16, rcvMTU int) (int, error) {
	fd, err := unix.Socket(unix.AF_BLUETOOTH, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.BTPROTO_L2CAP)
	if err != nil {
		return -1, fmt.Errorf("l2cap socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrL2{PSM: psm, Addr: local.addr, AddrType: local.addrType()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("l2cap bind %s psm %d: %w", local, psm, err)
	}
	// The receive MTU can only be set once bound (EINVAL before).
	if err := unix.SetsockoptInt(fd, solBluetooth, btRcvMTU, rcvMTU); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("l2cap set receive MTU %d: %w", rcvMTU, err)
	}
	return fd, nil
}

// waitFD waits until fd is ready for events or ctx/done ends.
func waitFD(ctx context.Context, done <-chan struct{}, fd int, events int16) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-done:
			return ErrClosed
		default:
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// l2capListener accepts LE L2CAP channels on a PSM.
type l2capListener struct {
	fd     int
	addr   string
	local  bdaddr
	psm    uint16
	rcvMTU int
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex // serialises accept against close
}

func listenL2CAP(local bdaddr, psm uint16, rcvMTU int) (*l2capListener, error) {
	fd, err := l2capSocket(local, psm, rcvMTU)
	if err != nil {
		return nil, err
	}
	if err := unix.Listen(fd, 8); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("l2cap listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("l2cap getsockname: %w", err)
	}
	l2, ok := sa.(*unix.SockaddrL2)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("l2cap getsockname: %T", sa)
	}
	return &l2capListener{fd: fd, local: local, psm: l2.PSM, addr: l2capAddr(local, l2.PSM), rcvMTU: rcvMTU, done: make(chan struct{})}, nil
}

func (l *l2capListener) Accept(ctx context.Context) (Link, error) {
	for {
		if err := waitFD(ctx, l.done, l.fd, unix.POLLIN); err != nil {
			return nil, err
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			return nil, ErrClosed
		default:
		}
		nfd, sa, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		l.mu.Unlock()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("l2cap accept: %w", err)
		}
		remote := bdaddr{}
		var rpsm uint16
		if r, ok := sa.(*unix.SockaddrL2); ok {
			remote.addr, remote.random, rpsm = reversed(r.Addr), r.AddrType == unix.BDADDR_LE_RANDOM, r.PSM
		}
		link, err := newL2CAPLink(nfd, l.addr, l2capAddr(remote, max(rpsm, 1)), remote.String(), l.rcvMTU)
		if err != nil {
			continue
		}
		return link, nil
	}
}

func (l *l2capListener) Addr() string { return l.addr }

func (l *l2capListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		unix.Close(l.fd)
		l.mu.Unlock()
	})
	return nil
}

// dialL2CAP connects to remote's psm from local.
func dialL2CAP(ctx context.Context, local, remote bdaddr, psm uint16, rcvMTU int) (Link, error) {
	fd, err := l2capSocket(local, 0, rcvMTU)
	if err != nil {
		return nil, err
	}
	err = unix.Connect(fd, &unix.SockaddrL2{PSM: psm, Addr: remote.addr, AddrType: remote.addrType()})
	if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EAGAIN) {
		if err = waitFD(ctx, nil, fd, unix.POLLOUT); err == nil {
			var soerr int
			soerr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil, fmt.Errorf("l2cap connect %s psm %d: %w: %v", remote, psm, ErrRefused, err)
		}
		if errors.Is(err, unix.EHOSTDOWN) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ETIMEDOUT) {
			return nil, fmt.Errorf("l2cap connect %s psm %d: %w: %v", remote, psm, ErrOutOfRange, err)
		}
		return nil, fmt.Errorf("l2cap connect %s psm %d: %w", remote, psm, err)
	}
	localAddr := l2capAddr(local, 0)
	if sa, err := unix.Getsockname(fd); err == nil {
		if l2, ok := sa.(*unix.SockaddrL2); ok {
			localAddr = l2capAddr(local, max(l2.PSM, 1))
		}
	}
	return newL2CAPLink(fd, localAddr, l2capAddr(remote, psm), remote.String(), rcvMTU)
}

// l2capLink is one connected channel: each read is one SDU, each write one.
type l2capLink struct {
	f             *os.File
	local, remote string
	remoteDev     string
	mtu           int
	rbuf          []byte
	closeOnce     sync.Once
}

func newL2CAPLink(fd int, local, remote, remoteDev string, rcvMTU int) (*l2capLink, error) {
	snd, err := unix.GetsockoptInt(fd, solBluetooth, btSndMTU)
	if err != nil || snd <= frameHeader {
		unix.Close(fd)
		return nil, fmt.Errorf("l2cap send MTU: %d, %v", snd, err)
	}
	rcv, err := unix.GetsockoptInt(fd, solBluetooth, btRcvMTU)
	if err != nil || rcv <= frameHeader {
		rcv = rcvMTU
	}
	// Both ends take the smaller of the two receive MTUs: frames fit
	// either way.
	mtu := min(snd&0xFFFF, rcv&0xFFFF)
	return &l2capLink{f: os.NewFile(uintptr(fd), "l2cap "+remote), local: local, remote: remote, remoteDev: remoteDev,
		mtu: mtu, rbuf: make([]byte, max(rcv&0xFFFF, mtu)+1)}, nil
}

func (l *l2capLink) ReadPacket() ([]byte, error) {
	n, err := l.f.Read(l.rbuf)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if n == 0 {
		return nil, io.EOF
	}
	return append([]byte(nil), l.rbuf[:n]...), nil
}

func (l *l2capLink) WritePacket(p []byte, deadline time.Time) error {
	if len(p) > l.mtu {
		return fmt.Errorf("l2cap write: %d bytes, MTU %d", len(p), l.mtu)
	}
	if err := l.f.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := l.f.Write(p)
	return err
}

func (l *l2capLink) MTU() int             { return l.mtu }
func (l *l2capLink) Ordered() bool        { return true }
func (l *l2capLink) LocalAddr() string    { return l.local }
func (l *l2capLink) RemoteAddr() string   { return l.remote }
func (l *l2capLink) RemoteDevice() string { return l.remoteDev }

func (l *l2capLink) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.f.Close() })
	return err
}
