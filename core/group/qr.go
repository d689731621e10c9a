package group

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// qrQuietZone is the light border, in modules, around a rendered code (the
// QR standard asks for 4; 2 is enough for phone scanners on a terminal).
const qrQuietZone = 2

// RenderQR renders a token as a QR code in terminal text, two modules per
// character row with Unicode half blocks. Dark modules are drawn as
// spaces and light modules as blocks, so the code scans on the usual
// light-on-dark terminal. The token is encoded in upper case, which QR's
// alphanumeric mode stores compactly; the token parsers ignore case.
func RenderQR(token string) (string, error) {
	code, err := qr.Encode(strings.ToUpper(token), qr.M)
	if err != nil {
		return "", fmt.Errorf("render qr: %w", err)
	}
	n := code.Size + 2*qrQuietZone
	light := func(x, y int) bool {
		x, y = x-qrQuietZone, y-qrQuietZone
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return true
		}
		return !code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := light(x, y), y+1 < n && light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
