package log

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// FuzzDecodeEntry: decoding never panics, and whatever decodes is
// canonical: it re-encodes to the same bytes, go-ipld-prime re-encodes it
// identically, and DecodeBlock accepts it under its CID.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range sampleEntries(f) {
		f.Add(e.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error without ErrMalformed: %v", err)
			}
			return
		}
		_ = e.VerifySignature()
		if got := appendEncoding(nil, e, true); !bytes.Equal(got, data) {
			t.Fatalf("decoded entry re-encodes differently:\n in  %x\n out %x", data, got)
		}
		if _, err := DecodeBlock(e.CID(), data); err != nil {
			t.Fatalf("DecodeBlock under its own cid: %v", err)
		}
		nb := basicnode.Prototype.Any.NewBuilder()
		if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
			t.Fatalf("accepted bytes that go-ipld-prime rejects: %v", err)
		}
		var buf bytes.Buffer
		if err := dagcbor.Encode(nb.Build(), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("accepted bytes that are not canonical dag-cbor (err %v)", err)
		}
	})
}

// fuzzBlocks splits data into blocks: each is a 2-byte big-endian length,
// a flag byte and the bytes. Flag bit 0 stores the block under the previous
// block's CID (a lie) instead of its own.
func fuzzBlocks(data []byte) (map[cid.Cid][]byte, []cid.Cid) {
	blocks := map[cid.Cid][]byte{}
	var order []cid.Cid
	var prev cid.Cid
	for len(data) >= 3 {
		n := int(binary.BigEndian.Uint16(data))
		flag := data[2]
		data = data[3:]
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		c := blockCID(b)
		if flag&1 == 1 && prev.Defined() {
			c = prev
		}
		blocks[c] = b
		order = append(order, c)
		prev = blockCID(b)
	}
	return blocks, order
}

func encodeFuzzBlocks(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, 0)
		out = append(out, b...)
	}
	return out
}

// fuzzJoinSeeds returns valid chains, in fuzzBlocks form.
func fuzzJoinSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	k1, k2 := testKey(tb, 1), testKey(tb, 2)
	root := craft(tb, k1, "root", 1, nil, nil)
	a := craft(tb, k1, "a", 2, []cid.Cid{root.CID()}, nil)
	b := craft(tb, k2, "b", 2, []cid.Cid{root.CID()}, nil)
	m := craft(tb, k1, "m", 3, []cid.Cid{a.CID(), b.CID()}, func(e *Entry) { e.Refs = nil })
	return [][]byte{
		encodeFuzzBlocks(m.Bytes(), a.Bytes(), b.Bytes(), root.Bytes()),
		encodeFuzzBlocks(a.Bytes(), root.Bytes()),
		encodeFuzzBlocks(b.Bytes()),
	}
}

// FuzzJoin: a join over arbitrary blocks never panics, and everything that
// enters the log is a valid, allowed entry whose whole next-closure is in
// the log.
func FuzzJoin(f *testing.F) {
	for _, s := range fuzzJoinSeeds(f) {
		f.Add(s)
	}
	k1 := testKey(f, 1).Public().(ed25519.PublicKey)
	k2 := testKey(f, 2).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, heads := fuzzBlocks(data)
		ctx := context.Background()
		l, err := Open(ctx, testLogID, NewMemBlockStore(), NewMemKV(), nil, AllowWriters(k1, k2),
			WithMaxEntrySize(4096), WithMaxJoinEntries(64))
		if err != nil {
			t.Fatal(err)
		}
		getter := getterFunc(func(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error] {
			return func(yield func(Block, error) bool) {
				for _, c := range cids {
					d, ok := blocks[c]
					var err error
					if !ok {
						err = ErrNotFound
					}
					if !yield(Block{CID: c, Data: d}, err) {
						return
					}
				}
			}
		})
		res, err := l.Join(ctx, heads, "fuzz", FetchFrom(getter))
		var je *JoinError
		if err != nil && !errors.As(err, &je) {
			t.Fatalf("join failed outright: %v", err)
		}
		if len(res.Added) != l.Len() {
			t.Fatalf("added %d, log has %d", len(res.Added), l.Len())
		}
		for e, err := range l.Entries(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if err := e.VerifySignature(); err != nil {
				t.Fatalf("entry in the log fails verification: %v", err)
			}
			if e.ID != testLogID || !(k1.Equal(e.Writer) || k2.Equal(e.Writer)) {
				t.Fatalf("foreign or disallowed entry entered: %+v", e)
			}
			for _, n := range e.Next {
				ne, err := l.Get(ctx, n)
				if err != nil {
					t.Fatalf("next %s of an entry is not in the log: %v", n, err)
				}
				if ne.Time >= e.Time {
					t.Fatal("clock rule broken in the log")
				}
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz seed files when
// SKEIN_WRITE_FUZZ_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SKEIN_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set SKEIN_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	write := func(target string, i int, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range sampleEntries(t) {
		if len(e.Bytes()) <= 8<<10 { // keep the corpus small
			write("FuzzDecodeEntry", i, e.Bytes())
		}
	}
	for i, s := range fuzzJoinSeeds(t) {
		write("FuzzJoin", i, s)
	}
}
