//go:build !linux

package ble

import (
	"errors"
	"log/slog"
)

func newBlueZDriver(Config, *slog.Logger) (Driver, error) {
	return nil, errors.New("driver bluez runs on Linux only; use driver sim elsewhere")
}
