package log

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// cpuMeter reports the process CPU time per op ("cpu-ns/op") beside the
// wall time: on a shared, loaded machine wall time overstates the cost.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: processCPUTime()} }

func (m cpuMeter) report(b *testing.B) {
	b.Helper()
	if d := processCPUTime() - m.start; d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// benchPayload is 200 bytes, the size the targets are stated for.
var benchPayload = make([]byte, 200)

// benchLogID is 32 bytes, the length of a hash-derived group log id.
const benchLogID = "0123456789abcdef0123456789abcdef"

func openBench(b *testing.B, blocks BlockStore, kv KV, key ed25519.PrivateKey) *Log {
	b.Helper()
	l, err := Open(context.Background(), benchLogID, blocks, kv, NewKeySigner(key),
		AllowWriters(key.Public().(ed25519.PublicKey)))
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	return l
}

// BenchmarkAppend measures Append (build, sign, encode, hash, put block,
// index batch) of 200-byte payloads on one goroutine.
func BenchmarkAppend(b *testing.B) {
	key := testKey(b, 1)
	l := openBench(b, NewMemBlockStore(), NewMemKV(), key)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := l.Append(ctx, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// buildLog appends n entries to a fresh in-memory log.
func buildLog(b *testing.B, n int) (*Log, *MemBlockStore, *MemKV, ed25519.PrivateKey) {
	b.Helper()
	key := testKey(b, 1)
	blocks, kv := NewMemBlockStore(), NewMemKV()
	l := openBench(b, blocks, kv, key)
	for range n {
		if _, err := l.Append(context.Background(), benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	return l, blocks, kv, key
}

// BenchmarkJoin10k joins a 10,000-entry log into an empty replica, fetching
// from an in-memory block store.
func BenchmarkJoin10k(b *testing.B) {
	src, srcBlocks, _, key := buildLog(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		dst := openBench(b, NewMemBlockStore(), NewMemKV(), key)
		res, err := dst.Join(ctx, src.Heads(), "bench", FetchFrom(srcBlocks))
		if err != nil || len(res.Added) != 10_000 {
			b.Fatalf("join: added %d, err %v", len(res.Added), err)
		}
	}
	cpu.report(b)
}

// BenchmarkOpen100k reopens a log of 100,000 entries. The in-memory
// fixture (100,000 blocks, 300,000 KV pairs) makes a large heap whose
// collection a real, disk-backed store would not cause, so each Open starts
// after a collection outside the timer; cpu-ns/op counts the Open only.
func BenchmarkOpen100k(b *testing.B) {
	_, blocks, kv, key := buildLog(b, 100_000)
	// A real store keeps keys sorted on disk; sort the in-memory one once.
	for range kv.Query(context.Background(), KVQuery{Prefix: []byte{0}, KeysOnly: true}) {
	}
	b.ReportAllocs()
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		start := processCPUTime()
		b.StartTimer()
		l := openBench(b, blocks, kv, key)
		b.StopTimer()
		cpu += processCPUTime() - start
		if l.Len() != 100_000 {
			b.Fatalf("len %d", l.Len())
		}
		b.StartTimer()
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkEntryOverhead reports the encoded bytes per entry above the
// 200-byte payload in a steady-state linear log (one next, default refs,
// 32-byte log id).
func BenchmarkEntryOverhead(b *testing.B) {
	for _, refs := range []int{0, DefaultAppendRefs} {
		b.Run(fmt.Sprintf("refs=%d", refs), func(b *testing.B) {
			key := testKey(b, 1)
			l, err := Open(context.Background(), benchLogID, NewMemBlockStore(), NewMemKV(), NewKeySigner(key),
				AllowWriters(key.Public().(ed25519.PublicKey)), WithAppendRefs(refs))
			if err != nil {
				b.Fatal(err)
			}
			for range 64 {
				if _, err := l.Append(context.Background(), benchPayload); err != nil {
					b.Fatal(err)
				}
			}
			var total int
			for b.Loop() {
				e, err := l.Append(context.Background(), benchPayload)
				if err != nil {
					b.Fatal(err)
				}
				total += len(e.Bytes()) - len(benchPayload)
			}
			b.ReportMetric(float64(total)/float64(b.N), "overhead-bytes/entry")
		})
	}
}

// BenchmarkCalibrateEd25519 measures the primitives that bound Append
// (one sign) and Join (one verify per entry), to read the others against.
func BenchmarkCalibrateEd25519(b *testing.B) {
	key := testKey(b, 1)
	msg := make([]byte, 300)
	sig := ed25519.Sign(key, msg)
	b.Run("sign", func(b *testing.B) {
		cpu := startCPU()
		for b.Loop() {
			ed25519.Sign(key, msg)
		}
		cpu.report(b)
	})
	b.Run("verify", func(b *testing.B) {
		cpu := startCPU()
		for b.Loop() {
			ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig)
		}
		cpu.report(b)
	})
}
