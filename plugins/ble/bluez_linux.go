package ble

import (
	"context"
	"errors"
	"log/slog"

	"github.com/skein-p2p/skein/sdk"
)

// ErrUnavailable: the radio is not available (no adapter, no BlueZ).
var ErrUnavailable = errors.New("ble: bluetooth adapter not available")

type bluezDriver struct{ cfg Config }

func newBlueZDriver(cfg Config, _ *slog.Logger) (Driver, error) { return &bluezDriver{cfg: cfg}, nil }

func (b *bluezDriver) Start(context.Context) error { return nil }
func (b *bluezDriver) Close() error                { return nil }
func (b *bluezDriver) Device() string              { return b.cfg.Adapter }
func (b *bluezDriver) Profile() sdk.PacketProfile  { return sdk.PacketProfile{MTU: b.cfg.ChannelMTU} }
func (b *bluezDriver) Listen(context.Context, string) (LinkListener, error) {
	return nil, ErrUnavailable
}
func (b *bluezDriver) Dial(context.Context, string) (Link, error)      { return nil, ErrUnavailable }
func (b *bluezDriver) Advertise(context.Context, []byte, []byte) error { return ErrUnavailable }
func (b *bluezDriver) Scan(context.Context) (<-chan Advertisement, error) {
	return nil, ErrUnavailable
}
func (b *bluezDriver) ReadIdentity(context.Context, string) ([]byte, error) {
	return nil, ErrUnavailable
}
