package ipfs

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	ma "github.com/multiformats/go-multiaddr"
)

// The multiaddr protocol of a plugin transport.
//
// A transport plugin's Protocol() name (e.g. "x-unix-pipe") becomes a
// multiaddr protocol whose value is the transport-specific address:
//
//	/x-unix-pipe/%2Frun%2Fskein%2Fpipe.sock/p2p/12D3KooW...
//
// Its code lies in the multicodec private-use range [0x300000, 0x3FFFFF]
// and is derived from the name alone, so every node computes the same code
// for the same name with no registry:
//
//	code = 0x300000 + (big-endian uint32 of sha256(name)[0:4]) mod 0x100000
//
// Two names that map to one code (or a name already used by a standard
// protocol) are refused with ErrProtocolCollision: rename the transport.

// Private-use range of the multicodec table.
const (
	privateCodeBase = 0x300000
	privateCodeSpan = 0x100000
)

// MaxTransportAddr bounds a transport-specific address in a multiaddr.
const MaxTransportAddr = 1024

var (
	// ErrProtocolCollision is returned when a transport's protocol name, or
	// the code derived from it, is already taken by another multiaddr
	// protocol.
	ErrProtocolCollision = errors.New("network.ipfs: multiaddr protocol collision")
	// ErrBadProtocolName is returned for a transport protocol name that is
	// not 1-64 characters of lower-case letters, digits and '-', starting
	// with a letter.
	ErrBadProtocolName = errors.New("network.ipfs: bad transport protocol name")
	// ErrBadTransportAddr is returned for a transport address value that
	// is empty, too long or not canonically escaped.
	ErrBadTransportAddr = errors.New("network.ipfs: bad transport address")
)

var protocolNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// ProtocolCode is the multiaddr code of the transport protocol name.
func ProtocolCode(name string) int {
	sum := sha256.Sum256([]byte(name))
	return privateCodeBase + int(binary.BigEndian.Uint32(sum[:4])%privateCodeSpan)
}

// registered remembers the protocols this package added, so that a second
// registration of the same name (another Network in the process, a
// restart) is a no-op and not a collision. go-multiaddr's registry has no
// lock of its own: registration happens in Start, before the host exists.
var registered struct {
	sync.Mutex
	names map[string]int
}

// RegisterTransportProtocol registers name as a multiaddr protocol with its
// derived code (see ProtocolCode) and the escaping transcoder. Registering
// a name again is a no-op. A name that is not valid, or that collides with
// an existing protocol by name or code, is refused.
func RegisterTransportProtocol(name string) (ma.Protocol, error) {
	if !protocolNameRE.MatchString(name) {
		return ma.Protocol{}, fmt.Errorf("%w %q: want 1-64 of a-z, 0-9 and '-', starting with a letter", ErrBadProtocolName, name)
	}
	code := ProtocolCode(name)
	registered.Lock()
	defer registered.Unlock()
	if c, ok := registered.names[name]; ok && c == code {
		return ma.ProtocolWithName(name), nil
	}
	if p := ma.ProtocolWithName(name); p.Code != 0 {
		return ma.Protocol{}, fmt.Errorf("%w: transport protocol %q is already a multiaddr protocol (code %#x): rename the transport", ErrProtocolCollision, name, p.Code)
	}
	if p := ma.ProtocolWithCode(code); p.Code != 0 {
		return ma.Protocol{}, fmt.Errorf("%w: transport protocol %q derives code %#x, already taken by %q: rename one of the transports", ErrProtocolCollision, name, code, p.Name)
	}
	p := ma.Protocol{
		Name:       name,
		Code:       code,
		VCode:      ma.CodeToVarint(code),
		Size:       ma.LengthPrefixedVarSize,
		Transcoder: addrTranscoder{},
	}
	if err := ma.AddProtocol(p); err != nil {
		return ma.Protocol{}, fmt.Errorf("%w: register %q: %v", ErrProtocolCollision, name, err)
	}
	if registered.names == nil {
		registered.names = map[string]int{}
	}
	registered.names[name] = code
	return p, nil
}

// addrTranscoder carries an arbitrary transport address (1 to
// MaxTransportAddr bytes) in a multiaddr component. The string form
// percent-escapes every byte outside [A-Za-z0-9-._~:@+,=] as %XX with
// upper-case hex, so '/' never appears in it; only that canonical form is
// accepted, so string and bytes map one to one.
type addrTranscoder struct{}

var _ ma.Transcoder = addrTranscoder{}

func unreserved(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("-._~:@+,=", b) >= 0
}

const upperHex = "0123456789ABCDEF"

// EscapeTransportAddr is the multiaddr string form of a transport address.
func EscapeTransportAddr(addr string) string {
	var sb strings.Builder
	for i := 0; i < len(addr); i++ {
		b := addr[i]
		if unreserved(b) {
			sb.WriteByte(b)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(upperHex[b>>4])
		sb.WriteByte(upperHex[b&0xF])
	}
	return sb.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// UnescapeTransportAddr parses the canonical multiaddr string form of a
// transport address.
func UnescapeTransportAddr(s string) (string, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if !unreserved(c) {
				return "", fmt.Errorf("%w: byte %q at %d must be escaped", ErrBadTransportAddr, c, i)
			}
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape at %d", ErrBadTransportAddr, i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad escape %q at %d (want %%XX, upper-case hex)", ErrBadTransportAddr, s[i:i+3], i)
		}
		b := hi<<4 | lo
		if unreserved(b) {
			return "", fmt.Errorf("%w: %q at %d escapes a byte that must appear as itself", ErrBadTransportAddr, s[i:i+3], i)
		}
		out = append(out, b)
		i += 2
	}
	if err := checkAddrBytes(out); err != nil {
		return "", err
	}
	return string(out), nil
}

func checkAddrBytes(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrBadTransportAddr)
	}
	if len(b) > MaxTransportAddr {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadTransportAddr, len(b), MaxTransportAddr)
	}
	return nil
}

func (addrTranscoder) StringToBytes(s string) ([]byte, error) {
	raw, err := UnescapeTransportAddr(s)
	if err != nil {
		return nil, err
	}
	return []byte(raw), nil
}

func (addrTranscoder) BytesToString(b []byte) (string, error) {
	if err := checkAddrBytes(b); err != nil {
		return "", err
	}
	return EscapeTransportAddr(string(b)), nil
}

func (addrTranscoder) ValidateBytes(b []byte) error { return checkAddrBytes(b) }

// TransportMultiaddr is the multiaddr of addr on the registered transport
// protocol p.
func TransportMultiaddr(p ma.Protocol, addr string) (ma.Multiaddr, error) {
	if err := checkAddrBytes([]byte(addr)); err != nil {
		return nil, err
	}
	c, err := ma.NewComponent(p.Name, EscapeTransportAddr(addr))
	if err != nil {
		return nil, fmt.Errorf("transport address %q: %w", addr, err)
	}
	return ma.Multiaddr{*c}, nil
}
