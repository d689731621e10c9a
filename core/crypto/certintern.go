package crypto

import (
	"sync"
	"sync/atomic"
)

// certIntern shares parsed device certificates between every parser of
// the process, by their encoding (SetCertificateInternSize; off by
// default): the same bytes parsed again (another member's copy of a
// device-added entry, in a simulation of many nodes in one process) yield
// the certificate parsed first. A DeviceCertificate is never modified
// once parsed, and the table's key is the whole encoding, so sharing one
// changes nothing but memory. Bounded: two generations of at most size/2;
// when the newer fills, the older is dropped.
var certIntern struct {
	size     atomic.Int64
	mu       sync.Mutex
	cur, old map[[DeviceCertificateSize]byte]*DeviceCertificate
}

// SetCertificateInternSize sets how many parsed device certificates the
// process shares (0, the default, turns sharing off) and empties the
// table. Package sim turns it on: each simulated member's membership then
// points at one copy of each certificate.
func SetCertificateInternSize(n int) {
	certIntern.mu.Lock()
	defer certIntern.mu.Unlock()
	certIntern.size.Store(int64(max(n, 0)))
	certIntern.cur, certIntern.old = nil, nil
}

// CertificateInternSize returns the size SetCertificateInternSize set.
func CertificateInternSize() int { return int(certIntern.size.Load()) }

// sharedCertificate returns the table's certificate encoded as b (nil if
// none, or the table is off).
func sharedCertificate(b []byte) *DeviceCertificate {
	if certIntern.size.Load() == 0 || len(b) != DeviceCertificateSize {
		return nil
	}
	k := [DeviceCertificateSize]byte(b)
	certIntern.mu.Lock()
	defer certIntern.mu.Unlock()
	if c := certIntern.cur[k]; c != nil {
		return c
	}
	return certIntern.old[k]
}

// shareCertificate keeps c, parsed from b, in the table (when it is on)
// and returns the table's copy.
func shareCertificate(b []byte, c *DeviceCertificate) *DeviceCertificate {
	size := int(certIntern.size.Load())
	if size == 0 || len(b) != DeviceCertificateSize {
		return c
	}
	k := [DeviceCertificateSize]byte(b)
	certIntern.mu.Lock()
	defer certIntern.mu.Unlock()
	if got := certIntern.cur[k]; got != nil {
		return got // parsed meanwhile
	}
	if certIntern.cur == nil {
		certIntern.cur = make(map[[DeviceCertificateSize]byte]*DeviceCertificate)
	}
	if len(certIntern.cur) >= max(size/2, 1) {
		certIntern.old, certIntern.cur = certIntern.cur, make(map[[DeviceCertificateSize]byte]*DeviceCertificate)
	}
	certIntern.cur[k] = c
	return c
}
