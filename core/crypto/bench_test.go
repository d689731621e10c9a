package crypto

import (
	"testing"
	"time"
)

var benchPayload = make([]byte, 200)

func BenchmarkSign(b *testing.B) {
	k := mustSigningKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Sign("skein/v1/log-entry", benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := mustSigningKey(b)
	sig, _ := k.Sign("skein/v1/log-entry", benchPayload)
	pub := k.Public()
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Verify("skein/v1/log-entry", benchPayload, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDeviceCertificate(b *testing.B) {
	account := mustSigningKey(b)
	c, _ := IssueDeviceCertificate(account, mustDeviceKey(b).Public(), time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyDeviceCertificate(c, account.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal200(b *testing.B) {
	key := RandomKey()
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(&key, benchPayload, benchPayload[:16]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen200(b *testing.B) {
	key := RandomKey()
	sealed, _ := Seal(&key, benchPayload, nil)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(&key, sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealTo200(b *testing.B) {
	d := mustDeviceKey(b)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealTo(d.Public().X25519, benchPayload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenFrom200(b *testing.B) {
	d := mustDeviceKey(b)
	sealed, _ := SealTo(d.Public().X25519, benchPayload, nil)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenFrom(d.X25519(), sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendingChainNext(b *testing.B) {
	s := NewSendingChain(RandomKey(), 0)
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
	}
}

func BenchmarkKeyForInOrder(b *testing.B) {
	r, _ := NewReceivingChain(RandomKey(), 0)
	var i uint64
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.KeyFor(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkKeyForOutOfOrder delivers each block of 100 indices in reverse,
// so every block advances the chain by 100 and then serves 99 kept keys.
func BenchmarkKeyForOutOfOrder(b *testing.B) {
	r, _ := NewReceivingChain(RandomKey(), 0)
	const block = 100
	var n uint64
	b.ReportAllocs()
	for b.Loop() {
		base := n / block * block
		idx := base + block - 1 - n%block
		if _, err := r.KeyFor(idx); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkArgon2Default measures one key derivation at the default keystore
// cost (what opening a passphrase keystore costs).
func BenchmarkArgon2Default(b *testing.B) {
	salt := make([]byte, saltSize)
	for b.Loop() {
		deriveKEK([]byte("correct horse battery staple"), salt, DefaultArgon2Params())
	}
}
