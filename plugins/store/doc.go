// Package store is Skein's persistent key-value store plugin ("store.pebble"),
// backed by CockroachDB's pebble LSM engine.
//
// It implements [sdk.Plugin] and [sdk.Store]: get, put, delete, has, atomic
// batches, prefix queries streamed in key order, and sync. Keys are ordered
// bytewise. Values handed out are always copies the caller owns.
//
// Durability: a Batch with sync=true, and every write before a successful
// Sync, survives a crash of the process or machine (kill -9 included). With
// the default sync_writes=false an individual Put or Delete is written to the
// write-ahead log but not fsynced; a crash may lose the last few unsynced
// writes, never a part of an atomic batch. Group writes into synced batches
// rather than paying one fsync per write.
//
// Configuration (the plugin's subtree of the node config):
//
//	path:        data directory (required); created with mode 0700 on Start
//	sync_writes: fsync every Put and Delete (default false)
//	cache_size:  block cache size, bytes or "64MiB" (default 64MiB)
//
// The lifecycle follows [sdk.Plugin]: [New] has no side effects, Configure
// validates, Start opens (and locks) the directory, Stop closes it and is
// idempotent. A directory already open in another process makes Start fail
// with [ErrLocked].
//
// Usage, linked in:
//
//	st, err := store.Open(ctx, store.Config{Path: dir})
//	if err != nil { ... }
//	defer st.Stop(context.Background())
//	err = st.Batch(ctx, []sdk.Op{{Key: k, Value: v}}, true)
//
// Out of process the same plugin is served by cmd/skein-store (or by
// `skein plugin serve store.pebble`). The in-memory store for tests and
// experiments is in package memstore.
package store
