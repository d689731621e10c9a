package sigcache

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
)

func TestVerifyCachesOnlySuccesses(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("an entry")
	sig := ed25519.Sign(priv, msg)
	bad := append([]byte(nil), sig...)
	bad[5] ^= 1
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name          string
		pub, msg, sig []byte
		want          bool
	}{
		{"good", pub, msg, sig, true},
		{"good again (cached)", pub, msg, sig, true},
		{"flipped signature bit", pub, msg, bad, false},
		{"flipped signature bit again", pub, msg, bad, false},
		{"other message", pub, []byte("an entrz"), sig, false},
		{"other key", other, msg, sig, false},
		{"short signature", pub, msg, sig[:63], false},
		{"short key", pub[:31], msg, sig, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Verify(tc.pub, tc.msg, tc.sig); got != tc.want {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	defer SetSize(DefaultSize)
	SetSize(64)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	for i := range 1000 {
		msg := fmt.Appendf(nil, "m%d", i)
		if !Verify(pub, msg, ed25519.Sign(priv, msg)) {
			t.Fatal("a good signature did not verify")
		}
	}
	held := 0
	for i := range sigCache.shards {
		s := &sigCache.shards[i]
		s.mu.Lock()
		held += len(s.cur) + len(s.old)
		s.mu.Unlock()
	}
	if held > 64 {
		t.Fatalf("cache holds %d signatures, capacity 64", held)
	}
	SetSize(0)
	msg := []byte("off")
	sig := ed25519.Sign(priv, msg)
	h0, m0 := Stats()
	if !Verify(pub, msg, sig) || !Verify(pub, msg, sig) {
		t.Fatal("a good signature did not verify with the cache off")
	}
	if h1, m1 := Stats(); h1 != h0 || m1 != m0 {
		t.Fatalf("cache off still counted: hits %d->%d misses %d->%d", h0, h1, m0, m1)
	}
}

func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 300)
	sig := ed25519.Sign(priv, msg)
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			Verify(pub, msg, sig)
		}
	})
	b.Run("ed25519", func(b *testing.B) {
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
	})
}
