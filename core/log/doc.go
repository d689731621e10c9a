// Package log is Skein's append-only Merkle log: a grow-only DAG of signed
// entries, each an IPFS block (dag-cbor, CIDv1, sha2-256), with one
// deterministic total order that every replica computes identically.
//
// An [Entry] holds the log id, an opaque payload (the group layer seals it),
// a Lamport time, the heads the writer saw (Next), skip pointers (Refs), the
// writer's Ed25519 public key and a signature over the canonical encoding of
// everything else. The wire format is specified in docs/protocol.md ("Log
// entries"); [DecodeBlock] is strict: a block that is not the canonical
// encoding of a well-formed entry, or that does not hash to the CID it was
// fetched under, is rejected.
//
// A [Log] stores entry blocks in a [BlockStore] and its heads and ordered
// index in a [KV] (a subset of sdk.Store), so reopening a large log reads
// the heads and index, never every entry. [Log.Append] signs and adds a
// local entry; [Log.Join] fetches what a remote replica has and this one
// lacks, verifies every entry (hash, encoding, signature, write access via
// the [AccessController] the group layer supplies, size limits, clock
// sanity) before it enters, and reports every rejected entry with the peer
// that sent it. The total order is (time, writer key, CID binary), ascending;
// [WithOrder] swaps the tie-break among entries of one time for another
// [Order] (e.g. [LamportCIDOrder]: time, then CID), recorded with the log.
// A Join is two halves: [Log.PrepareJoin] fetches and checks signatures
// without any lock of the log, [PreparedJoin.Commit] validates against the
// log as it is then and adds, so a caller that serialises commits under a
// lock of its own (the group layer) holds it only for the second half.
//
// Writes are group commits: an append or a join's commit is staged in
// memory (the next append builds on it) and queued, and the first of the
// waiting callers writes every queued one as one block write
// ([BlockPutter] when the block store has it) and one KV batch, synced if
// any asks. [Log.BeginAppend] returns before the write, so a caller that
// holds its own lock over an append releases it before [Pending.Wait];
// concurrent appends then share one fsync. A failed write is undone in
// memory with everything staged after it. The index is also kept in
// memory, so Has and a join's lookups read no KV.
//
// With [WithBlocksInKV] (what a node uses) the blocks go into that KV batch
// instead, and into the block store a few milliseconds later, off the
// writer's path: one synced write makes an entry durable, block and all.
// The KV copy of a block is deleted once the block store holds it, and
// [Open] places again what a stopped process left unplaced.
//
// Usage sketch:
//
//	blocks := log.NewMemBlockStore()     // or the network plugin's blocks
//	kv := log.NewMemKV()                  // or an adapted sdk.Store
//	signer := log.NewKeySigner(priv)      // or the device key from core/crypto
//	access := log.AllowWriters(pub1, pub2) // or the group's access check
//	l, err := log.Open(ctx, "group-id/messages", blocks, kv, signer, access)
//	if err != nil { ... }
//	defer l.Close()
//	e, err := l.Append(ctx, sealedPayload)
//	// on receipt of remote heads from peer p:
//	res, err := l.Join(ctx, remoteHeads, p)
//	for e, err := range l.Entries(ctx, log.Since(lastSeen)) { ... }
//	for e := range l.Subscribe(ctx) { ... }
package log
