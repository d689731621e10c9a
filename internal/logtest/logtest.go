// Package logtest makes core/log entries for tests of the packages that
// handle them from the network: genuine signed entries, and forged ones
// whose signature no longer verifies.
package logtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/skein-p2p/skein/core/log"
)

// ForgedPayload is the payload of ForgedEntry before the forgery.
const ForgedPayload = "genuine payload to be forged"

// SignedEntry returns the block of one genuine entry of log logID with
// payload, signed by key.
func SignedEntry(tb testing.TB, logID string, key ed25519.PrivateKey, payload string) []byte {
	tb.Helper()
	ctx := context.Background()
	l, err := log.Open(ctx, logID, log.NewMemBlockStore(), log.NewMemKV(), log.NewKeySigner(key),
		log.AllowWriters(key.Public().(ed25519.PublicKey)))
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	e, err := l.Append(ctx, []byte(payload))
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(e.Bytes())
}

// ForgedEntry returns a well-formed entry block of log logID, signed by
// key, whose payload was changed after signing: it decodes, but its
// signature does not verify.
func ForgedEntry(tb testing.TB, logID string, key ed25519.PrivateKey) []byte {
	tb.Helper()
	raw := SignedEntry(tb, logID, key, ForgedPayload)
	i := bytes.Index(raw, []byte(ForgedPayload))
	if i < 0 {
		tb.Fatal("payload not found in the entry's bytes")
	}
	raw[i] ^= 0x01
	return raw
}
