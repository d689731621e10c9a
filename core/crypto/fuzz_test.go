package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Fuzz targets for every decoder of bytes that can arrive from elsewhere.
// Seed corpora live in testdata/fuzz/<FuzzName>/; regenerate them with
//
//	SKEIN_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./core/crypto

var fuzzAD = []byte("skein/fuzz")

func fuzzX25519Key(tb testing.TB) *X25519PrivateKey {
	tb.Helper()
	b := make([]byte, X25519KeySize)
	for i := range b {
		b[i] = byte(i + 1)
	}
	k, err := NewX25519PrivateKey(b)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func fuzzSymmetricKey() *[KeySize]byte {
	var k [KeySize]byte
	for i := range k {
		k[i] = byte(0x40 + i)
	}
	return &k
}

func FuzzParseDeviceCertificate(f *testing.F) {
	f.Add(make([]byte, DeviceCertificateSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseDeviceCertificate(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, _ := c.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("encoding is not canonical")
		}
		_ = VerifyDeviceCertificate(c, c.Account) // must not panic
	})
}

func FuzzOpenFrom(f *testing.F) {
	f.Add(make([]byte, SealToOverhead))
	key := fuzzX25519Key(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := OpenFrom(key, b, fuzzAD)
		if err != nil {
			if plain != nil {
				t.Fatal("plaintext returned with error")
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(plain) != len(b)-SealToOverhead {
			t.Fatalf("plaintext length %d for box of %d", len(plain), len(b))
		}
	})
}

func FuzzOpen(f *testing.F) {
	f.Add(make([]byte, SealOverhead))
	key := fuzzSymmetricKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := Open(key, b, fuzzAD)
		if err != nil {
			if plain != nil {
				t.Fatal("plaintext returned with error")
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(plain) != len(b)-SealOverhead {
			t.Fatalf("plaintext length %d for box of %d", len(plain), len(b))
		}
	})
}

// FuzzAESGCMOpen and FuzzAESGCMOpenFrom feed arbitrary bytes to the second
// suite's decoders: errors only of the documented kinds, never plaintext
// with an error.
func FuzzAESGCMOpen(f *testing.F) {
	f.Add(make([]byte, SealOverhead))
	key := fuzzSymmetricKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := AESGCMSuite{}.Open(key, b, fuzzAD)
		if err != nil {
			if plain != nil {
				t.Fatal("plaintext returned with error")
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(plain) != len(b)-SealOverhead {
			t.Fatalf("plaintext length %d for box of %d", len(plain), len(b))
		}
	})
}

func FuzzAESGCMOpenFrom(f *testing.F) {
	f.Add(make([]byte, SealToOverhead))
	key := fuzzX25519Key(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := AESGCMSuite{}.OpenFrom(key, b, fuzzAD)
		if err != nil {
			if plain != nil {
				t.Fatal("plaintext returned with error")
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(plain) != len(b)-SealToOverhead {
			t.Fatalf("plaintext length %d for box of %d", len(plain), len(b))
		}
	})
}

func FuzzReceivingChainUnmarshal(f *testing.F) {
	f.Add([]byte{'R', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r ReceivingChain
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, _ := r.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("encoding is not canonical")
		}
		next := r.Next()
		for _, i := range []uint64{0, next - 1, next, next + 1, next + 5000} {
			_, _ = r.KeyFor(i)
			if uint64(r.Skipped()) > r.window {
				t.Fatalf("kept %d keys beyond window %d", r.Skipped(), r.window)
			}
		}
	})
}

func FuzzSendingChainUnmarshal(f *testing.F) {
	f.Add([]byte{'S', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SendingChain
		if err := s.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("encoding is not canonical")
		}
	})
}

func FuzzParseDeviceKey(f *testing.F) {
	f.Add(make([]byte, DeviceKeySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDeviceKey(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, _ := d.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("encoding is not canonical")
		}
	})
}

// TestWriteFuzzCorpus regenerates the seed corpora (valid and near-valid
// inputs) when SKEIN_WRITE_FUZZ_CORPUS=1; otherwise it checks they exist.
func TestWriteFuzzCorpus(t *testing.T) {
	write := os.Getenv("SKEIN_WRITE_FUZZ_CORPUS") == "1"
	corpora := map[string][][]byte{}
	if write {
		corpora = fuzzSeeds(t)
	}
	for _, name := range []string{"FuzzParseDeviceCertificate", "FuzzOpenFrom", "FuzzOpen",
		"FuzzReceivingChainUnmarshal", "FuzzSendingChainUnmarshal", "FuzzParseDeviceKey"} {
		dir := filepath.Join("testdata", "fuzz", name)
		if !write {
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) == 0 {
				t.Errorf("seed corpus %s missing (run with SKEIN_WRITE_FUZZ_CORPUS=1): %v", dir, err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, seed := range corpora[name] {
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func fuzzSeeds(tb testing.TB) map[string][][]byte {
	tb.Helper()
	account, _ := NewSigningKeyFromSeed(bytes.Repeat([]byte{1}, SeedSize))
	devSign, _ := NewSigningKeyFromSeed(bytes.Repeat([]byte{2}, SeedSize))
	devX := fuzzX25519Key(tb)
	dev := NewDeviceKey(devSign, devX)
	cert, err := IssueDeviceCertificate(account, dev.Public(), time.Unix(1_790_000_000, 0))
	if err != nil {
		tb.Fatal(err)
	}
	certBytes, _ := cert.MarshalBinary()
	forged := bytes.Clone(certBytes)
	forged[len(forged)-1] ^= 1

	box, err := SealTo(devX.Public(), []byte("a chain key share"), fuzzAD)
	if err != nil {
		tb.Fatal(err)
	}
	emptyBox, _ := SealTo(devX.Public(), nil, fuzzAD)
	sym, _ := Seal(fuzzSymmetricKey(), bytes.Repeat([]byte("m"), 200), fuzzAD)
	emptySym, _ := Seal(fuzzSymmetricKey(), nil, fuzzAD)

	var ck [KeySize]byte
	s := NewSendingChain(ck, 3)
	r, _ := NewReceivingChain(ck, 3, WithWindow(16))
	_, _ = r.KeyFor(10)
	_, _ = r.KeyFor(5)
	rState, _ := r.MarshalBinary()
	fresh, _ := NewReceivingChain(ck, 0)
	freshState, _ := fresh.MarshalBinary()
	sState, _ := s.MarshalBinary()
	devBytes, _ := dev.MarshalBinary()

	return map[string][][]byte{
		"FuzzParseDeviceCertificate":  {certBytes, forged, certBytes[:DeviceCertificateSize-1]},
		"FuzzOpenFrom":                {box, emptyBox, box[:SealToOverhead-1]},
		"FuzzOpen":                    {sym, emptySym, sym[:SealOverhead-1]},
		"FuzzReceivingChainUnmarshal": {rState, freshState, rState[:len(rState)-1]},
		"FuzzSendingChainUnmarshal":   {sState, sState[:len(sState)-1]},
		"FuzzParseDeviceKey":          {devBytes, devBytes[:len(devBytes)-1]},
	}
}
