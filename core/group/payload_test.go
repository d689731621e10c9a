package group

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
)

func samplePayloads(t testing.TB) map[string]*MetaPayload {
	t.Helper()
	acct, _ := crypto.GenerateSigningKey()
	dev, _ := crypto.GenerateDeviceKey()
	cert, _ := crypto.IssueDeviceCertificate(acct, dev.Public(), time.Unix(1700000000, 0))
	k := func() crypto.PublicKey { s, _ := crypto.GenerateSigningKey(); return s.Public() }
	r := func() RecipientID { return RecipientOf(k()) }
	box := func(n int) []byte { return bytes.Repeat([]byte{5}, n) }
	eph := crypto.X25519PublicKey(bytes.Repeat([]byte{9}, 32))
	sig := bytes.Repeat([]byte{7}, crypto.SignatureSize)
	return map[string]*MetaPayload{
		"group-created":    {Type: MetaGroupCreated, Kind: KindContact, Accounts: []crypto.PublicKey{k(), k()}, GroupSig: sig},
		"device-added key": {Type: MetaDeviceAdded, Epoch: EpochID{1}, Cert: cert, AuthType: AuthGroupKey, AuthSig: sig},
		"device-added inv": {Type: MetaDeviceAdded, Cert: cert, AuthType: AuthInvitation, InviteKey: k(), AuthSig: sig},
		"invitation":       {Type: MetaInvitationCreated, InviteKey: k()},
		"chain-keys":       {Type: MetaChainKeys, Ephemeral: eph, Shares: []Share{{Recipient: r(), Box: box(chainBoxSize)}, {Recipient: r(), Box: box(chainBoxSize)}}},
		"rekey":            {Type: MetaRekey, NewEpoch: EpochID{9, 9}, Removed: []crypto.PublicKey{k()}, Cutoffs: []Cutoff{{Device: k(), MetaTime: 5, MsgTime: 300, Limits: []EpochLimit{{Epoch: EpochID{}, Limit: 12}}}}, Ephemeral: eph, Shares: []Share{{Recipient: r(), Box: box(secretBoxSize)}}},
		"rekey no share":   {Type: MetaRekey, NewEpoch: EpochID{7}},
		"member-left":      {Type: MetaMemberLeft, Cutoffs: []Cutoff{{Device: k(), MsgTime: 1}}},
		"app-metadata":     {Type: MetaAppMetadata, Sealed: []byte("opaque")},
	}
}

func TestMetaPayloadRoundTrip(t *testing.T) {
	for name, p := range samplePayloads(t) {
		t.Run(name, func(t *testing.T) {
			b := mustMarshal(t, p)
			got, err := DecodeMetaPayload(b)
			if err != nil {
				t.Fatal(err)
			}
			if again := mustMarshal(t, got); !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
			for _, cut := range []int{1, len(b) / 2} {
				if _, err := DecodeMetaPayload(b[:len(b)-cut]); !errors.Is(err, ErrMalformedPayload) {
					t.Fatalf("cut %d bytes: %v, want ErrMalformedPayload", cut, err)
				}
			}
			if _, err := DecodeMetaPayload(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("trailing byte: %v", err)
			}
		})
	}
	chain := append([]byte{byte(MetaChainKeys)}, make([]byte, 16)...)
	for name, b := range map[string][]byte{
		"empty":                      nil,
		"type 0":                     {0},
		"unknown type":               append([]byte{99}, make([]byte, 16)...),
		"huge share count":           append(slices.Clone(chain), 0xff, 0xff, 0xff, 0x7f),
		"non-minimal varint":         append(slices.Clone(chain), 0x81, 0x00),
		"no share":                   append(slices.Clone(chain), 0),
		"shares beyond the bytes":    append(append(slices.Clone(chain), 200), make([]byte, 32+64)...),
		"share box one byte short":   append(append(slices.Clone(chain), 1), make([]byte, 32+8+chainBoxSize-1)...),
		"rekey to the genesis epoch": append(append([]byte{byte(MetaRekey)}, make([]byte, 16+16)...), 0, 0, 0),
	} {
		t.Run("bad "+name, func(t *testing.T) {
			if _, err := DecodeMetaPayload(b); !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("got %v, want ErrMalformedPayload", err)
			}
		})
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := &Envelope{SealedEpoch: [sealedEpochSize]byte{3}, Header: []byte("header"), Body: bytes.Repeat([]byte{1}, 300)}
	b := mustMarshal(t, e)
	got, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SealedEpoch != e.SealedEpoch || !bytes.Equal(got.Header, e.Header) || !bytes.Equal(got.Body, e.Body) {
		t.Fatalf("round trip: %+v", got)
	}
	for name, bad := range map[string][]byte{
		"truncated": b[:len(b)-1],
		"trailing":  append(bytes.Clone(b), 0),
		"version":   append([]byte{9}, b[1:]...),
		"empty":     nil,
	} {
		if _, err := DecodeEnvelope(bad); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: %v, want ErrMalformedPayload", name, err)
		}
	}
}

// fuzzSealing is the fixed group, writer and keys FuzzOpenMetaPayload
// opens under (its seeds are sealed with them).
func fuzzSealing(t testing.TB) (*logKeys, crypto.PublicKey, crypto.PublicKey) {
	t.Helper()
	group, writer := crypto.PublicKey{1}, crypto.PublicKey{2}
	keys, err := deriveLogKeys(crypto.DefaultSuite(), group, &[32]byte{3})
	if err != nil {
		t.Fatal(err)
	}
	return keys, group, writer
}

// A metadata payload opens only under its group's key, for its writer,
// and a version other than 2 is refused (version 1 was in clear).
func TestSealedMetaPayload(t *testing.T) {
	keys, group, writer := fuzzSealing(t)
	p := samplePayloads(t)["invitation"]
	sealed, err := sealMeta(keys, group, writer, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openMeta(keys, group, writer, sealed)
	if err != nil || got.InviteKey != p.InviteKey {
		t.Fatalf("open: %+v, %v", got, err)
	}
	plain := mustMarshal(t, p)
	if bytes.Contains(sealed, p.InviteKey[:]) || bytes.Contains(sealed, plain[1:]) {
		t.Fatal("the sealed payload shows its content")
	}
	otherKeys, err := deriveLogKeys(crypto.DefaultSuite(), group, &[32]byte{4})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for name, open := range map[string]func() (*MetaPayload, error){
		"another replication key": func() (*MetaPayload, error) { return openMeta(otherKeys, group, writer, sealed) },
		"another group":           func() (*MetaPayload, error) { return openMeta(keys, crypto.PublicKey{9}, writer, sealed) },
		"another writer":          func() (*MetaPayload, error) { return openMeta(keys, group, crypto.PublicKey{9}, sealed) },
		"a bit flipped":           func() (*MetaPayload, error) { return openMeta(keys, group, writer, flipped) },
		"version 1 in clear":      func() (*MetaPayload, error) { return openMeta(keys, group, writer, append([]byte{1}, plain...)) },
		"truncated":               func() (*MetaPayload, error) { return openMeta(keys, group, writer, sealed[:20]) },
		"empty":                   func() (*MetaPayload, error) { return openMeta(keys, group, writer, nil) },
	} {
		if _, err := open(); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: %v, want ErrMalformedPayload", name, err)
		}
	}
}

// TestWriteFuzzCorpus regenerates the seed corpora under testdata/fuzz
// when SKEIN_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SKEIN_WRITE_CORPUS") != "1" {
		t.Skip("set SKEIN_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	write := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		content := "go test fuzz v1\n[]byte(" + quoteBytes(data) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeString := func(target, name, s string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		content := "go test fuzz v1\nstring(" + quoteString(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	keys, group, writer := fuzzSealing(t)
	for _, name := range slices.Sorted(maps.Keys(samplePayloads(t))) {
		p := samplePayloads(t)[name]
		i++
		write("FuzzDecodeMetaPayload", "seed-"+string(rune('a'+i)), mustMarshal(t, p))
		sealed, err := sealMeta(keys, group, writer, p)
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzOpenMetaPayload", "seed-"+string(rune('a'+i)), sealed)
	}
	se, err := sealEpoch(keys, group, writer, EpochID{1})
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzDecodeEnvelope", "seed-a", mustMarshal(t, &Envelope{SealedEpoch: se, Header: []byte("h"), Body: []byte("body")}))
	write("FuzzDecodeEnvelope", "seed-b", mustMarshal(t, &Envelope{}))
	inv := testInvitation(t)
	writeString("FuzzParseInvitation", "seed-a", inv.Token())
	acct, _ := crypto.GenerateSigningKey()
	writeString("FuzzParseInvitation", "seed-b", (&Invitation{Kind: KindAccount, Group: acct.Public(), GroupSeed: acct.Seed()}).Token())
	writeString("FuzzParseInvitation", "seed-c", "skein1-aaaa")
	id := newIdentity(t)
	ct, _ := id.ContactToken("Alice")
	writeString("FuzzParseContactToken", "seed-a", ct.Token())
	writeString("FuzzParseContactToken", "seed-b", inv.Token())
	req, g, err := RequestContact(ctxT(t), newIdentity(t), ct, "Bob", newNet().storage())
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	writeString("FuzzParseContactRequest", "seed-a", req.Token())
	writeString("FuzzParseContactRequest", "seed-b", ct.Token())
}

func quoteBytes(b []byte) string {
	var out []byte
	out = append(out, '"')
	for _, c := range b {
		out = append(out, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
	}
	return string(append(out, '"'))
}

func quoteString(s string) string { return quoteBytes([]byte(s)) }

// TestEnvelopeOfAChatMessage: the envelope of a 200-byte message is
// 1 (version) + 56 (sealed epoch) + 1 + 26 (header: version, index,
// sent-at and a tag, sealed once with no nonce) + 2 + 216 (body and tag)
// = 302 bytes, 24 fewer than version 3's (whose header carried a nonce).
func TestEnvelopeOfAChatMessage(t *testing.T) {
	n := newNet()
	a := n.create(t, "alice")[0]
	m := send(t, a, string(bytes.Repeat([]byte{'m'}, 200)))
	e, err := a.g.msgs.Get(ctxT(t), m.CID)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if env.Version != envelopeVersion || envelopeVersion != 4 {
		t.Fatalf("envelope version %d, want 4", env.Version)
	}
	if len(env.Header) != 10+crypto.TagSize || len(env.Body) != 200+crypto.TagSize {
		t.Fatalf("header %d B, body %d B; want 26 and 216", len(env.Header), len(env.Body))
	}
	if len(e.Payload) != 302 {
		t.Fatalf("envelope of a 200-B message is %d B, want 302", len(e.Payload))
	}
}

// TestEnvelopeVersionsRead: a message log written before version 4 stays
// readable: an envelope of version 3 (header sealed with a nonce under
// the epoch's header key) is delivered, as is one of version 4.
func TestEnvelopeVersionsRead(t *testing.T) {
	for _, v := range []byte{envelopeVersion3, envelopeVersion} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			n := newNet()
			rs := n.create(t, "alice", "bob")
			a, b := rs[0], rs[1]
			send(t, b, "bob's first")
			syncAll(t, a, b)
			idx, mk := b.g.sendChains[GenesisEpoch].Next()
			body := fmt.Sprintf("bob in version %d", v)
			w := newRawWriter(t, n, "bob", MessagesLogID(a.g.ID()), b.id.Device)
			w.follow(t, b.g.Heads().Messages)
			w.append(t, forgeEnvelopeVersion(t, b.g, v, b.id.DeviceKey(), GenesisEpoch, idx, []byte(body), mk))
			if err := a.g.Receive(ctxT(t), "bob", Heads{Messages: w.l.Heads()}); err != nil {
				t.Fatal(err)
			}
			if got := bodies(t, a.g); !slices.Contains(got, body) {
				t.Fatalf("alice has %q, want %q", got, body)
			}
		})
	}
}
