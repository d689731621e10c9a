package plugintest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
	"github.com/skein-p2p/skein/sdk/plugintest"
)

// benchStores gives the store linked in and the same store out of process.
func benchStores(b *testing.B) []struct {
	name string
	s    sdk.Store
} {
	b.Helper()
	linked := plugintest.NewMemStore()
	plugintest.StartLinked(b, linked, nil)
	rp := plugintest.StartProcess(b, "memstore")
	remote, ok := rp.Store()
	if !ok {
		b.Fatal("plugin does not serve a store")
	}
	return []struct {
		name string
		s    sdk.Store
	}{{"linked", linked}, {"process", remote}}
}

// BenchmarkRoundTrip measures one unary call (Store.Has) and reports its
// median latency as p50-µs.
func BenchmarkRoundTrip(b *testing.B) {
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) {
			ctx := context.Background()
			key := []byte("round-trip")
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				if _, err := st.s.Has(ctx, key); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkStorePuts measures puts/s one call per put and in batches.
func BenchmarkStorePuts(b *testing.B) {
	value := make([]byte, 100)
	for _, st := range benchStores(b) {
		for _, batch := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", st.name, batch), func(b *testing.B) {
				ctx := context.Background()
				ops := make([]sdk.Op, batch)
				n := 0
				for b.Loop() {
					for i := range ops {
						ops[i] = sdk.Op{Key: fmt.Appendf(nil, "bench/%012d", n), Value: value}
						n++
					}
					var err error
					if batch == 1 {
						err = st.s.Put(ctx, ops[0].Key, ops[0].Value)
					} else {
						err = st.s.Batch(ctx, ops, false)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "puts/s")
			})
		}
	}
}
