package ble

import (
	"context"
	"errors"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// Driver is a Bluetooth LE radio as the plugin uses it: advertising and
// scanning with a small identity read (GATT) for discovery, and
// connection-oriented packet links (L2CAP LE credit-based channels, or a
// GATT byte stream where those are refused) for data. The plugin owns
// every policy (framing, who dials, link cap, backoff, bounds); a driver
// only moves packets and advertisements.
//
// Two drivers exist: the simulated radio (driver "sim", sim.go) and BlueZ
// on Linux (driver "bluez", bluez_linux.go).
type Driver interface {
	// Start powers the driver up; Close releases everything it holds.
	Start(ctx context.Context) error
	Close() error
	// Device is this device's address ("sim-a", "00:AA:01:00:00:23").
	Device() string
	// Profile is the link's figures: MTU is the largest packet a link
	// carries (frame header included).
	Profile() sdk.PacketProfile

	// Listen opens a channel other devices can dial; addr is "" or
	// "auto" for a channel the driver picks, else an address this driver
	// returned before. The listener's Addr is dialable by other devices.
	Listen(ctx context.Context, addr string) (LinkListener, error)
	// Dial opens a link to a listener's address.
	Dial(ctx context.Context, addr string) (Link, error)

	// Advertise broadcasts adv (at most MaxAdvertisement bytes) and
	// serves identity to any device that connects and reads it, until
	// ctx ends. A second call replaces the first.
	Advertise(ctx context.Context, adv, identity []byte) error
	// Scan reports the advertisements heard until ctx ends.
	Scan(ctx context.Context) (<-chan Advertisement, error)
	// ReadIdentity connects to device and reads its identity (at most
	// MaxIdentity bytes are kept).
	ReadIdentity(ctx context.Context, device string) ([]byte, error)
}

// MaxAdvertisement is the size of a legacy BLE advertisement's payload.
const MaxAdvertisement = 31

// MaxIdentity bounds the identity a device serves and the bytes read of
// another's.
const MaxIdentity = 512

// Advertisement is one advertisement heard.
type Advertisement struct {
	Device string
	Data   []byte
}

// LinkListener accepts inbound links on one channel.
type LinkListener interface {
	Accept(ctx context.Context) (Link, error)
	Addr() string
	Close() error
}

// Link is one connection-oriented packet link between two devices. Its
// packets arrive whole and in order (an L2CAP channel's SDUs), except on
// the GATT fallback, whose Ordered is false.
type Link interface {
	// ReadPacket returns the next packet; io.EOF once the peer closed.
	// Close unblocks it.
	ReadPacket() ([]byte, error)
	// WritePacket sends one packet of at most MTU bytes, blocking while
	// the link has no credit; a non-zero deadline bounds the wait
	// (os.ErrDeadlineExceeded).
	WritePacket(p []byte, deadline time.Time) error
	// MTU is the largest packet.
	MTU() int
	// Ordered is false where packets may come out of order (and carry
	// their order in the frame's sequence number).
	Ordered() bool
	// LocalAddr and RemoteAddr are transport addresses; RemoteDevice is
	// the peer's device address.
	LocalAddr() string
	RemoteAddr() string
	RemoteDevice() string
	Close() error
}

// Driver errors.
var (
	// ErrRefused: nothing listens at the address dialled.
	ErrRefused = errors.New("ble: connection refused")
	// ErrOutOfRange: the device is not in radio range (or gone).
	ErrOutOfRange = errors.New("ble: device out of range")
	// ErrLinkLimit: this device or the peer has as many links as it allows.
	ErrLinkLimit = errors.New("ble: link limit reached")
	// ErrBadAddress: an address that is not this driver's form.
	ErrBadAddress = errors.New("ble: bad address")
	// ErrClosed: the driver, listener or link is closed.
	ErrClosed = errors.New("ble: closed")
	// ErrBackoff: a recent dial to the address failed; the next try waits.
	ErrBackoff = errors.New("ble: dial backing off after a failure")
	// ErrAdvertisementSize: an advertisement larger than 31 bytes.
	ErrAdvertisementSize = errors.New("ble: advertisement larger than 31 bytes")
)
