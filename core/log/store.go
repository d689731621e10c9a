package log

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"iter"

	"github.com/ipfs/go-cid"
)

// Block is one content-addressed block: its CID and bytes.
type Block struct {
	CID  cid.Cid
	Data []byte
}

// BlockGetter fetches blocks, e.g. from the network.
type BlockGetter interface {
	// GetMany fetches the given blocks and yields one result per requested
	// CID, in any order, as they arrive: either (Block{CID, Data}, nil) or
	// (Block{CID: c}, err) when block c cannot be had (err wraps
	// ErrNotFound when it does not exist). A result with an undefined CID
	// and a non-nil error (e.g. the context ended) ends the stream.
	// Implementations bound their own parallelism; Join never passes more
	// CIDs in one call than its configured parallelism. The caller
	// verifies that Data hashes to CID; the getter need not. The log keeps
	// Data (decoded entries alias it), so the getter must not reuse or
	// modify it after yielding.
	GetMany(ctx context.Context, cids []cid.Cid) iter.Seq2[Block, error]
}

// BlockStore is where a log keeps its entry blocks: the local blockstore,
// backed by the network for blocks it lacks. The network plugin implements
// it; NewMemBlockStore is an in-memory one.
type BlockStore interface {
	BlockGetter
	// Get returns the block's bytes, or an error wrapping ErrNotFound.
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	// Put stores a block; putting a block that is already there is a no-op.
	Put(ctx context.Context, c cid.Cid, data []byte) error
	// Has reports whether the block is stored locally.
	Has(ctx context.Context, c cid.Cid) (bool, error)
}

// BlockPutter is an optional BlockStore capability: storing many blocks in
// one call (for a network plugin out of process, one cross-process call
// and one synced write) instead of a Put each. A join stores the entries
// it adds with it when the BlockStore has it.
type BlockPutter interface {
	// PutMany stores blocks; blocks already there are no-ops.
	PutMany(ctx context.Context, blocks []Block) error
}

// KVOp is one write in a KV batch (the shape of sdk.Op).
type KVOp struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// KVPair is one result of a prefix query (the shape of sdk.KeyValue).
type KVPair struct {
	Key   []byte
	Value []byte
}

// KVQuery selects keys by prefix (the shape of sdk.Query).
type KVQuery struct {
	Prefix   []byte
	KeysOnly bool
	// Limit caps the results; 0 means no limit.
	Limit int
}

// KV is the small key-value store a log persists its heads and index in.
// It is the subset of sdk.Store a log needs, with this package's own types
// so that core/log does not depend on the sdk: adapting an sdk.Store is a
// field-for-field copy of ops and pairs, and mapping sdk.ErrNotFound to
// ErrNotFound. Keys are ordered bytewise.
type KV interface {
	// Get returns the value, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key []byte) ([]byte, error)
	Put(ctx context.Context, key, value []byte) error
	Delete(ctx context.Context, key []byte) error
	Has(ctx context.Context, key []byte) (bool, error)
	// Batch applies ops atomically; with sync it returns once they are durable.
	Batch(ctx context.Context, ops []KVOp, sync bool) error
	// Query streams the pairs whose key has q.Prefix, in key order.
	Query(ctx context.Context, q KVQuery) iter.Seq2[KVPair, error]
}

// Signer signs entries with a device's Ed25519 key. core/crypto's device key
// satisfies it; NewKeySigner wraps a raw private key.
type Signer interface {
	PublicKey() ed25519.PublicKey
	// Sign returns an Ed25519 signature of msg (64 bytes). It must not keep
	// msg after returning (the log reuses the buffer).
	Sign(msg []byte) ([]byte, error)
}

// NewKeySigner returns a Signer for an Ed25519 private key.
func NewKeySigner(priv ed25519.PrivateKey) Signer { return keySigner{priv: priv} }

type keySigner struct{ priv ed25519.PrivateKey }

func (s keySigner) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

func (s keySigner) Sign(msg []byte) ([]byte, error) {
	if len(s.priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign entry: private key has %d bytes, want %d", len(s.priv), ed25519.PrivateKeySize)
	}
	return ed25519.Sign(s.priv, msg), nil
}

// AccessController decides whether an entry's writer may write to the log.
// The group layer supplies it and decides by writer key and, if it wants,
// the entry's clock or payload (e.g. the epoch).
//
// CanWrite returns nil to allow, or an error to refuse; the log wraps a
// refusal in ErrNotAllowed. It is called with an entry whose encoding, hash,
// signature, size and clock have already been checked, both for local
// appends and for every joined entry. Within one Join, calls are sequential
// (never concurrent) and in causal order: every new entry under e.Next was
// passed to CanWrite, and passed every check, before e. An entry allowed by
// CanWrite can still fail to enter if the join's commit fails. CanWrite must
// not call back into the same Log.
type AccessController interface {
	CanWrite(ctx context.Context, e *Entry) error
}

// AllowWriters returns an AccessController that allows exactly the given
// writer keys.
func AllowWriters(keys ...ed25519.PublicKey) AccessController {
	w := make(allowWriters, len(keys))
	for i, k := range keys {
		w[i] = bytes.Clone(k)
	}
	return w
}

type allowWriters []ed25519.PublicKey

func (w allowWriters) CanWrite(_ context.Context, e *Entry) error {
	for _, k := range w {
		if k.Equal(e.Writer) {
			return nil
		}
	}
	return fmt.Errorf("writer %x is not in the allowed set", []byte(e.Writer))
}
