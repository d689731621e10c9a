package crypto

import "github.com/skein-p2p/skein/internal/intern"

// certIntern shares parsed device certificates between every parser of
// the process, by their encoding (SetCertificateInternSize; off by
// default): the same bytes parsed again (another member's copy of a
// device-added entry, in a simulation of many nodes in one process) yield
// the certificate parsed first. A DeviceCertificate is never modified
// once parsed, and the table's key is the whole encoding, so sharing one
// changes nothing but memory. Bounded: two generations of at most size/2;
// when the newer fills, the older is dropped.
var certIntern intern.Table[[DeviceCertificateSize]byte, *DeviceCertificate]

// SetCertificateInternSize sets how many parsed device certificates the
// process shares (0, the default, turns sharing off) and empties the
// table. Package sim turns it on: each simulated member's membership then
// points at one copy of each certificate.
func SetCertificateInternSize(n int) { certIntern.SetSize(n) }

// CertificateInternSize returns the size SetCertificateInternSize set.
func CertificateInternSize() int { return certIntern.Size() }

// sharedCertificate returns the table's certificate encoded as b (nil if
// none, or the table is off).
func sharedCertificate(b []byte) *DeviceCertificate {
	if certIntern.Size() == 0 || len(b) != DeviceCertificateSize {
		return nil
	}
	c, _ := certIntern.Get([DeviceCertificateSize]byte(b))
	return c
}

// shareCertificate keeps c, parsed from b, in the table (when it is on)
// and returns the table's copy.
func shareCertificate(b []byte, c *DeviceCertificate) *DeviceCertificate {
	if len(b) != DeviceCertificateSize {
		return c
	}
	return certIntern.Add([DeviceCertificateSize]byte(b), c, nil)
}
