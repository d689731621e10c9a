package store

import (
	"context"
	"encoding/binary"
	"flag"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

var long = flag.Bool("store.long", false, "run the long store tests (the semantics suite out of process)")

// TestSemanticsOutOfProcess runs this package's own semantics suite across
// the wire, one fresh plugin process (and directory) per case.
func TestSemanticsOutOfProcess(t *testing.T) {
	if !*long {
		t.Skip("long: run with -store.long")
	}
	storetest.Run(t, func(t testing.TB) sdk.Store {
		rp := plugintest.StartProcess(t, ID, plugintest.WithConfig(map[string]any{"path": t.TempDir(), "cache_size": "8MiB"}))
		st, ok := rp.Store()
		if !ok {
			t.Fatal("plugin does not serve a store")
		}
		return st
	})
}

const benchValueSize = 128

func benchKey(buf []byte, i int) []byte {
	buf = append(buf[:0], "bench/"...)
	return binary.BigEndian.AppendUint64(buf, uint64(i))
}

// benchPuts writes b.N single puts and reports puts/s.
func benchPuts(b *testing.B, s sdk.Store) {
	ctx := context.Background()
	val := make([]byte, benchValueSize)
	var key []byte
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key = benchKey(key, i)
		if err := s.Put(ctx, key, val); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// benchBatches writes b.N batches of size puts and reports puts/s.
func benchBatches(b *testing.B, s sdk.Store, size int, sync bool) {
	ctx := context.Background()
	ops := make([]sdk.Op, size)
	val := make([]byte, benchValueSize)
	b.SetBytes(int64(size * benchValueSize))
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for j := range ops {
			ops[j] = sdk.Op{Key: benchKey(nil, n), Value: val}
			n++
		}
		if err := s.Batch(ctx, ops, sync); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "puts/s")
}

func linkedStore(b *testing.B) sdk.Store {
	p, err := Open(context.Background(), Config{Path: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

func remoteStore(b *testing.B) sdk.Store {
	rp := plugintest.StartProcess(b, ID, plugintest.WithConfig(map[string]any{"path": b.TempDir()}))
	st, ok := rp.Store()
	if !ok {
		b.Fatal("plugin does not serve a store")
	}
	return st
}

func BenchmarkLinkedPut(b *testing.B)             { benchPuts(b, linkedStore(b)) }
func BenchmarkLinkedBatch1000Sync(b *testing.B)   { benchBatches(b, linkedStore(b), 1000, true) }
func BenchmarkLinkedBatch1000NoSync(b *testing.B) { benchBatches(b, linkedStore(b), 1000, false) }
func BenchmarkRemotePut(b *testing.B)             { benchPuts(b, remoteStore(b)) }
func BenchmarkRemoteBatch1000Sync(b *testing.B)   { benchBatches(b, remoteStore(b), 1000, true) }
func BenchmarkRemoteBatch1000NoSync(b *testing.B) { benchBatches(b, remoteStore(b), 1000, false) }
func BenchmarkRemoteBatch100Sync(b *testing.B)    { benchBatches(b, remoteStore(b), 100, true) }

func BenchmarkLinkedGet(b *testing.B) {
	s := linkedStore(b)
	ctx := context.Background()
	const keys = 10000
	ops := make([]sdk.Op, keys)
	for i := range ops {
		ops[i] = sdk.Op{Key: benchKey(nil, i), Value: make([]byte, benchValueSize)}
	}
	if err := s.Batch(ctx, ops, false); err != nil {
		b.Fatal(err)
	}
	var key []byte
	for i := 0; b.Loop(); i++ {
		key = benchKey(key, i%keys)
		if _, err := s.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkRemoteQuery streams 10,000 pairs out of process per iteration.
func BenchmarkRemoteQuery(b *testing.B) {
	s := remoteStore(b)
	ctx := context.Background()
	const keys = 10000
	ops := make([]sdk.Op, keys)
	for i := range ops {
		ops[i] = sdk.Op{Key: benchKey(nil, i), Value: make([]byte, benchValueSize)}
	}
	if err := s.Batch(ctx, ops, false); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		for _, err := range s.Query(ctx, sdk.Query{Prefix: []byte("bench/")}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pairs/s")
}
