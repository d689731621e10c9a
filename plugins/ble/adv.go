package ble

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// What a device says over the air.
//
// Its advertisement (31 bytes, legacy advertising) is three AD structures:
//
//	02 01 06                         flags: LE general discoverable, no BR/EDR
//	11 07 <ServiceUUID, 16 bytes LE> complete list of 128-bit service UUIDs
//	09 FF FF FF 01 <ns:2> <id:3>     manufacturer data (company 0xFFFF, the
//	                                 id reserved for tests), version 1, the
//	                                 first bytes of sha256(namespace) and of
//	                                 sha256(peer id)
//
// Nothing in it names the node: the hashes only tell a scanner whether the
// identity it read before is still the one advertised. A scanner that
// wants the peer connects and reads the identity characteristic of the
// Skein GATT service (ServiceUUID), whose value is
//
//	01 | ns:2 | len(addr):1 | addr | peer id
//
// addr is the transport address to dial (an L2CAP channel: "<bdaddr>@<psm>"),
// the peer id the network's (libp2p) peer id. A radio neighbour learns from
// it what a LAN neighbour learns from mDNS: a peer id and where to dial it.

// ServiceUUID is the Skein GATT service, advertised.
const ServiceUUID = "b1e5c0de-5ce1-4e1d-9a7e-5e1d0000b1e5"

// IdentityUUID is the identity characteristic (read) of the service.
const IdentityUUID = "b1e5c0de-5ce1-4e1d-9a7e-5e1d0001b1e5"

// RXUUID (write without response) and TXUUID (notify) are the GATT byte
// stream's characteristics, the fallback where L2CAP channels are refused
// (gattstream.go).
const (
	RXUUID = "b1e5c0de-5ce1-4e1d-9a7e-5e1d0002b1e5"
	TXUUID = "b1e5c0de-5ce1-4e1d-9a7e-5e1d0003b1e5"
)

// serviceUUIDBytes is ServiceUUID in the little-endian order of the air.
var serviceUUIDBytes = uuidLE(ServiceUUID)

func uuidLE(s string) [16]byte {
	var b [16]byte
	hex := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			hex = append(hex, s[i])
		}
	}
	for i := range 16 {
		var v byte
		_, _ = fmt.Sscanf(string(hex[2*i:2*i+2]), "%02x", &v)
		b[15-i] = v
	}
	return b
}

const (
	advVersion      = 1
	identityVersion = 1
	companyTest     = 0xFFFF
	maxPeerID       = 128
	maxAddr         = 128
)

// Advertisement and identity errors.
var (
	ErrNotSkein    = errors.New("ble: not a Skein advertisement")
	ErrBadIdentity = errors.New("ble: malformed identity")
)

func nsHash(ns string) [2]byte {
	s := sha256.Sum256([]byte(ns))
	return [2]byte{s[0], s[1]}
}

func idHash(id string) [3]byte {
	s := sha256.Sum256([]byte(id))
	return [3]byte{s[0], s[1], s[2]}
}

// encodeAdvertisement builds the 31-byte advertisement.
func encodeAdvertisement(ns, peerID string) []byte {
	b := make([]byte, 0, MaxAdvertisement)
	b = append(b, 0x02, 0x01, 0x06)
	b = append(b, 0x11, 0x07)
	b = append(b, serviceUUIDBytes[:]...)
	n, id := nsHash(ns), idHash(peerID)
	b = append(b, 0x09, 0xFF, byte(companyTest&0xFF), byte(companyTest>>8), advVersion, n[0], n[1], id[0], id[1], id[2])
	return b
}

// advInfo is what a Skein advertisement tells.
type advInfo struct {
	ns [2]byte
	id [3]byte
}

// parseAdvertisement reads an advertisement's AD structures and returns
// the Skein fields, or ErrNotSkein.
func parseAdvertisement(b []byte) (advInfo, error) {
	if len(b) > MaxAdvertisement {
		return advInfo{}, fmt.Errorf("%w: %d bytes", ErrAdvertisementSize, len(b))
	}
	var info advInfo
	var hasUUID, hasData bool
	for len(b) > 0 {
		l := int(b[0])
		if l == 0 {
			break // the rest is padding
		}
		if 1+l > len(b) {
			return advInfo{}, fmt.Errorf("%w: AD structure of %d bytes overruns", ErrNotSkein, l)
		}
		typ, data := b[1], b[2:1+l]
		switch typ {
		case 0x06, 0x07: // incomplete / complete list of 128-bit UUIDs
			for u := data; len(u) >= 16; u = u[16:] {
				if bytes.Equal(u[:16], serviceUUIDBytes[:]) {
					hasUUID = true
				}
			}
		case 0xFF:
			if len(data) == 8 && binary.LittleEndian.Uint16(data) == companyTest && data[2] == advVersion {
				copy(info.ns[:], data[3:5])
				copy(info.id[:], data[5:8])
				hasData = true
			}
		}
		b = b[1+l:]
	}
	if !hasUUID || !hasData {
		return advInfo{}, ErrNotSkein
	}
	return info, nil
}

// identity is the value of the identity characteristic.
type identity struct {
	ns     [2]byte
	addr   string
	peerID string
}

func encodeIdentity(ns, addr, peerID string) ([]byte, error) {
	if len(addr) > maxAddr || !printable(addr) {
		return nil, fmt.Errorf("%w: address %q", ErrBadIdentity, addr)
	}
	if len(peerID) == 0 || len(peerID) > maxPeerID || !printableID(peerID) {
		return nil, fmt.Errorf("%w: peer id must be 1 to %d printable characters", ErrBadIdentity, maxPeerID)
	}
	n := nsHash(ns)
	b := []byte{identityVersion, n[0], n[1], byte(len(addr))}
	b = append(b, addr...)
	return append(b, peerID...), nil
}

func parseIdentity(b []byte) (identity, error) {
	if len(b) > MaxIdentity {
		return identity{}, fmt.Errorf("%w: %d bytes", ErrBadIdentity, len(b))
	}
	if len(b) < 4 || b[0] != identityVersion {
		return identity{}, fmt.Errorf("%w: no version 1 header", ErrBadIdentity)
	}
	l := int(b[3])
	if l > maxAddr || 4+l > len(b) {
		return identity{}, fmt.Errorf("%w: address length %d", ErrBadIdentity, l)
	}
	id := identity{ns: [2]byte{b[1], b[2]}, addr: string(b[4 : 4+l]), peerID: string(b[4+l:])}
	if !printable(id.addr) || id.peerID == "" || len(id.peerID) > maxPeerID || !printableID(id.peerID) {
		return identity{}, fmt.Errorf("%w: address or peer id not printable, or peer id empty or too long", ErrBadIdentity)
	}
	return id, nil
}

// printable: ASCII letters, digits and punctuation, no space or '/'.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '/' {
			return false
		}
	}
	return true
}

// printableID: ASCII letters, digits and punctuation, no space.
func printableID(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
