package messenger

import (
	"bytes"
	"errors"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

func TestDecodeRegistration(t *testing.T) {
	gk, err := crypto.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	secret, key := crypto.RandomKey(), crypto.RandomKey()
	good := encodeRegistration(secret, gk.Public(), key)
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", good, true},
		{"empty", nil, false},
		{"short", good[:len(good)-1], false},
		{"long", append(bytes.Clone(good), 0), false},
		{"version 2", append([]byte{2}, good[1:]...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, g, k, err := decodeRegistration(tc.b)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("err = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || s != secret || g != gk.Public() || k != key {
				t.Fatalf("decoded %v", err)
			}
		})
	}
}

func FuzzDecodeRegistration(f *testing.F) {
	f.Add(encodeRegistration([32]byte{1}, crypto.PublicKey{2}, [32]byte{3}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, g, k, err := decodeRegistration(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeRegistration(s, g, k), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
