package crypto_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
)

func ExampleVerifyDeviceCertificate() {
	account, _ := crypto.GenerateSigningKey()
	device, _ := crypto.GenerateDeviceKey()
	cert, _ := crypto.IssueDeviceCertificate(account, device.Public(), time.Now())

	wire, _ := cert.MarshalBinary()
	received, err := crypto.ParseDeviceCertificate(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(crypto.VerifyDeviceCertificate(received, account.Public()))

	stranger, _ := crypto.GenerateSigningKey()
	fmt.Println(crypto.VerifyDeviceCertificate(received, stranger.Public()) != nil)
	// Output:
	// <nil>
	// true
}

func ExampleSealTo() {
	bob, _ := crypto.GenerateDeviceKey()
	ad := []byte("group 1, epoch 3, chain key of alice's phone")
	box, _ := crypto.SealTo(bob.Public().X25519, []byte("chain key"), ad)

	plain, err := crypto.OpenFrom(bob.X25519(), box, ad)
	fmt.Println(string(plain), err)
	// Output: chain key <nil>
}

func ExampleReceivingChain() {
	chainKey := crypto.RandomKey()
	sender := crypto.NewSendingChain(chainKey, 0)
	receiver, _ := crypto.NewReceivingChain(chainKey, 0)

	i0, k0 := sender.Next()
	i1, k1 := sender.Next()
	sealed1, _ := crypto.Seal(&k1, []byte("second"), nil)
	_, _ = i0, k0

	// Message 1 arrives first; message 0's key is kept for later.
	mk, _ := receiver.KeyFor(i1)
	plain, _ := crypto.Open(&mk, sealed1, nil)
	fmt.Println(string(plain), receiver.Skipped())

	_, err := receiver.KeyFor(i1) // a replay
	fmt.Println(err)
	// Output:
	// second 1
	// ratchet key for 1: ratchet message key already used
}

func ExampleKeystore() {
	dir, _ := os.MkdirTemp("", "keystore-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys")

	ks, _ := crypto.OpenKeystore(path, crypto.WithPassphrase([]byte("correct horse battery staple")),
		crypto.WithArgon2Params(crypto.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1})) // cheap for the example
	device, _ := crypto.GenerateDeviceKey()
	b, _ := device.MarshalBinary()
	_ = ks.Put("device/key", b)
	_ = ks.Close()

	_, err := crypto.OpenKeystore(path, crypto.WithPassphrase([]byte("wrong")))
	fmt.Println(err != nil, errors.Is(err, crypto.ErrWrongPassphrase))

	ks, _ = crypto.OpenKeystore(path, crypto.WithPassphrase([]byte("correct horse battery staple")))
	b, _ = ks.Get("device/key")
	again, _ := crypto.ParseDeviceKey(b)
	fmt.Println(again.Public() == device.Public())
	// Output:
	// true true
	// true
}
