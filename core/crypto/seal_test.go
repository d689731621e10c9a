package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := RandomKey()
	other := RandomKey()
	ad := []byte("group/epoch/1")
	for _, suite := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		t.Run(suite.Name(), func(t *testing.T) {
			for _, size := range []int{0, 1, 200, 64 << 10} {
				plain := bytes.Repeat([]byte{0xa5}, size)
				sealed, err := suite.Seal(&key, plain, ad)
				if err != nil {
					t.Fatalf("seal %d bytes: %v", size, err)
				}
				if len(sealed) != size+SealOverhead {
					t.Fatalf("sealed %d bytes to %d, want %d", size, len(sealed), size+SealOverhead)
				}
				got, err := suite.Open(&key, sealed, ad)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("open %d bytes: %v", size, err)
				}
			}
			plain := []byte("hello, group")
			sealed, err := suite.Seal(&key, plain, ad)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := suite.Seal(&key, plain, ad)
			if bytes.Equal(sealed, again) {
				t.Fatal("two seals of the same plaintext are equal: nonce not random")
			}
			flip := func(i int) []byte {
				c := bytes.Clone(sealed)
				c[i] ^= 1
				return c
			}
			tests := []struct {
				name    string
				key     *[KeySize]byte
				sealed  []byte
				ad      []byte
				wantErr error
			}{
				{"tampered nonce", &key, flip(0), ad, ErrDecrypt},
				{"tampered ciphertext", &key, flip(NonceSize + 1), ad, ErrDecrypt},
				{"tampered tag", &key, flip(len(sealed) - 1), ad, ErrDecrypt},
				{"wrong associated data", &key, sealed, []byte("group/epoch/2"), ErrDecrypt},
				{"missing associated data", &key, sealed, nil, ErrDecrypt},
				{"wrong key", &other, sealed, ad, ErrDecrypt},
				{"truncated below overhead", &key, sealed[:SealOverhead-1], ad, ErrMalformed},
				{"truncated tag", &key, sealed[:len(sealed)-1], ad, ErrDecrypt},
				{"empty", &key, nil, ad, ErrMalformed},
				{"nil key", nil, sealed, ad, ErrInvalidOption},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := suite.Open(tc.key, tc.sealed, tc.ad)
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("got %v, want %v", err, tc.wantErr)
					}
					if got != nil {
						t.Fatal("returned plaintext along with an error")
					}
				})
			}
		})
	}
}

func TestSealToOpenFrom(t *testing.T) {
	alice := mustDeviceKey(t)
	bob := mustDeviceKey(t)
	ad := []byte("chain-key-share")
	plain := []byte("a chain key for bob")
	for _, suite := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		t.Run(suite.Name(), func(t *testing.T) {
			sealed, err := suite.SealTo(alice.Public().X25519, plain, ad)
			if err != nil {
				t.Fatalf("seal to: %v", err)
			}
			if len(sealed) != len(plain)+SealToOverhead {
				t.Fatalf("sealed length %d, want %d", len(sealed), len(plain)+SealToOverhead)
			}
			got, err := suite.OpenFrom(alice.X25519(), sealed, ad)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("open from: %v", err)
			}
			again, _ := suite.SealTo(alice.Public().X25519, plain, ad)
			if bytes.Equal(sealed[:X25519KeySize], again[:X25519KeySize]) {
				t.Fatal("ephemeral key reused")
			}
			flip := func(i int) []byte {
				c := bytes.Clone(sealed)
				c[i] ^= 1
				return c
			}
			tests := []struct {
				name    string
				key     *X25519PrivateKey
				sealed  []byte
				ad      []byte
				wantErr error
			}{
				{"wrong recipient", bob.X25519(), sealed, ad, ErrDecrypt},
				{"tampered ephemeral key", alice.X25519(), flip(3), ad, ErrDecrypt},
				{"tampered ciphertext", alice.X25519(), flip(X25519KeySize), ad, ErrDecrypt},
				{"tampered tag", alice.X25519(), flip(len(sealed) - 1), ad, ErrDecrypt},
				{"wrong associated data", alice.X25519(), sealed, []byte("other"), ErrDecrypt},
				{"zero ephemeral key", alice.X25519(), append(make([]byte, X25519KeySize), sealed[X25519KeySize:]...), ad, ErrDecrypt},
				{"truncated", alice.X25519(), sealed[:SealToOverhead-1], ad, ErrMalformed},
				{"empty", alice.X25519(), nil, ad, ErrMalformed},
				{"nil key", nil, sealed, ad, ErrInvalidOption},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := suite.OpenFrom(tc.key, tc.sealed, tc.ad)
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("got %v, want %v", err, tc.wantErr)
					}
					if got != nil {
						t.Fatal("returned plaintext along with an error")
					}
				})
			}
		})
	}
}

func TestSealToLowOrderRecipient(t *testing.T) {
	// The all-zero point has small order: X25519 with it is all-zero and
	// must be refused rather than sealing under a predictable key.
	for _, suite := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		if _, err := suite.SealTo(X25519PublicKey{}, []byte("x"), nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: got %v, want ErrMalformed", suite.Name(), err)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	secret := RandomKey()
	a1, err := DeriveKey(secret[:], nil, "skein/v1/a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := DeriveKey(secret[:], nil, "skein/v1/a")
	b, _ := DeriveKey(secret[:], nil, "skein/v1/b")
	salted, _ := DeriveKey(secret[:], []byte("salt"), "skein/v1/a")
	if a1 != a2 {
		t.Fatal("DeriveKey not deterministic")
	}
	if a1 == b || a1 == salted || a1 == secret {
		t.Fatal("DeriveKey outputs not independent")
	}
}

func TestRandomKey(t *testing.T) {
	if a, b := RandomKey(), RandomKey(); a == b || a == [KeySize]byte{} {
		t.Fatal("RandomKey repeats or is zero")
	}
}

// A MultiSealer's boxes are SealTo boxes under one ephemeral key: each
// recipient opens its own with OpenFrom, and no other.
func TestMultiSealer(t *testing.T) {
	for _, suite := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		t.Run(suite.Name(), func(t *testing.T) { testMultiSealer(t, suite) })
	}
}

func testMultiSealer(t *testing.T, suite Suite) {
	var keys []*X25519PrivateKey
	for range 3 {
		k, err := GenerateX25519Key()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	m, err := NewMultiSealerFor(suite)
	if err != nil {
		t.Fatal(err)
	}
	eph := m.Ephemeral()
	pt := []byte("one chain key for everyone")
	var boxes [][]byte
	for i, k := range keys {
		box, err := m.SealTo(k.Public(), pt, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if len(box) != len(pt)+TagSize {
			t.Fatalf("box of %d bytes, want %d", len(box), len(pt)+TagSize)
		}
		boxes = append(boxes, box)
	}
	for i, k := range keys {
		for j, box := range boxes {
			got, err := suite.OpenFrom(k, append(eph[:], box...), []byte{byte(j)})
			switch {
			case i == j && (err != nil || !bytes.Equal(got, pt)):
				t.Fatalf("recipient %d opens its box: %q, %v", i, got, err)
			case i != j && !errors.Is(err, ErrDecrypt):
				t.Fatalf("recipient %d opens box %d: %v, want ErrDecrypt", i, j, err)
			}
		}
	}
	if _, err := m.SealTo(X25519PublicKey{}, pt, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("low-order recipient: %v, want ErrMalformed", err)
	}
	if _, err := m.SealTo(keys[0].Public(), pt, nil); err != nil {
		t.Fatalf("the sealer is unusable after a bad recipient: %v", err)
	}
	m.Destroy()
	if _, err := m.SealTo(keys[0].Public(), pt, nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("destroyed sealer: %v", err)
	}
}

// Each suite's boxes open under that suite only: a member sealing with one
// and opening with the other gets ErrDecrypt, never plaintext.
func TestSuitesDoNotOpenEachOther(t *testing.T) {
	key := RandomKey()
	dev, err := GenerateX25519Key()
	if err != nil {
		t.Fatal(err)
	}
	suites := []Suite{DefaultSuite(), AESGCMSuite{}}
	for _, a := range suites {
		for _, b := range suites {
			if a.Name() == b.Name() {
				continue
			}
			t.Run(a.Name()+" to "+b.Name(), func(t *testing.T) {
				sealed, err := a.Seal(&key, []byte("hello"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := b.Open(&key, sealed, nil); !errors.Is(err, ErrDecrypt) || got != nil {
					t.Fatalf("open: %q, %v, want ErrDecrypt", got, err)
				}
				once, err := a.SealOnce(&key, []byte("hello"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := b.OpenOnce(&key, once, nil); !errors.Is(err, ErrDecrypt) || got != nil {
					t.Fatalf("open once: %q, %v, want ErrDecrypt", got, err)
				}
				box, err := a.SealTo(dev.Public(), []byte("hello"), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := b.OpenFrom(dev, box, nil); !errors.Is(err, ErrDecrypt) || got != nil {
					t.Fatalf("open from: %q, %v, want ErrDecrypt", got, err)
				}
			})
		}
	}
}

func TestSuiteByName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr error
	}{
		{"xchacha20poly1305-x25519-hkdfsha256", nil},
		{AESGCMSuiteName, nil},
		{"rot13", ErrInvalidOption},
		{"", ErrInvalidOption},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := SuiteByName(tc.name)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if s.Name() != tc.name {
					t.Fatalf("suite %q for name %q", s.Name(), tc.name)
				}
				if err := CheckSuiteSizes(s); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// shortSuite adds a 12-byte nonce instead of 24: the group wire formats
// cannot hold it, and CheckSuiteSizes says so.
type shortSuite struct{ XChaChaSuite }

func (shortSuite) Name() string { return "short" }
func (s shortSuite) Seal(key *[KeySize]byte, plaintext, ad []byte) ([]byte, error) {
	out, err := s.XChaChaSuite.Seal(key, plaintext, ad)
	return out[12:], err
}

func TestCheckSuiteSizes(t *testing.T) {
	if err := CheckSuiteSizes(shortSuite{}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("got %v, want ErrInvalidOption", err)
	}
	if _, err := NewMultiSealerFor(noEphemeral{}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("suite without SealToEphemeral: got %v, want ErrInvalidOption", err)
	}
}

// noEphemeral hides XChaChaSuite's SealToEphemeral.
type noEphemeral struct{ s XChaChaSuite }

func (n noEphemeral) Name() string { return "no-ephemeral" }
func (n noEphemeral) Seal(key *[KeySize]byte, p, ad []byte) ([]byte, error) {
	return n.s.Seal(key, p, ad)
}
func (n noEphemeral) Open(key *[KeySize]byte, b, ad []byte) ([]byte, error) {
	return n.s.Open(key, b, ad)
}
func (n noEphemeral) SealOnce(key *[KeySize]byte, p, ad []byte) ([]byte, error) {
	return n.s.SealOnce(key, p, ad)
}
func (n noEphemeral) OpenOnce(key *[KeySize]byte, b, ad []byte) ([]byte, error) {
	return n.s.OpenOnce(key, b, ad)
}
func (n noEphemeral) SealTo(r X25519PublicKey, p, ad []byte) ([]byte, error) {
	return n.s.SealTo(r, p, ad)
}
func (n noEphemeral) OpenFrom(r *X25519PrivateKey, b, ad []byte) ([]byte, error) {
	return n.s.OpenFrom(r, b, ad)
}

// TestSealOnce (each suite): the output is the ciphertext and tag only (no nonce), it
// opens under the same key and associated data and under nothing else, and
// every modified byte fails closed.
func TestSealOnce(t *testing.T) {
	for _, suite := range []Suite{DefaultSuite(), AESGCMSuite{}} {
		t.Run(suite.Name(), func(t *testing.T) {
			key := RandomKey()
			plain, ad := []byte("a message under a single-use key"), []byte("ad")
			sealed, err := suite.SealOnce(&key, plain, ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(plain)+TagSize {
				t.Fatalf("sealed %d bytes, want %d", len(sealed), len(plain)+TagSize)
			}
			got, err := suite.OpenOnce(&key, sealed, ad)
			if err != nil || string(got) != string(plain) {
				t.Fatalf("OpenOnce = %q, %v", got, err)
			}
			other := RandomKey()
			for name, open := range map[string]func() ([]byte, error){
				"wrong key": func() ([]byte, error) { return suite.OpenOnce(&other, sealed, ad) },
				"wrong ad":  func() ([]byte, error) { return suite.OpenOnce(&key, sealed, []byte("da")) },
			} {
				if _, err := open(); !errors.Is(err, ErrDecrypt) {
					t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
				}
			}
			for i := range sealed {
				bad := append([]byte(nil), sealed...)
				bad[i] ^= 1
				if _, err := suite.OpenOnce(&key, bad, ad); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
				}
			}
			if _, err := suite.OpenOnce(&key, sealed[:TagSize-1], ad); !errors.Is(err, ErrMalformed) {
				t.Fatalf("short input: err = %v, want ErrMalformed", err)
			}
		})
	}
}
