package pluginhost

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkUnaryCall measures one store Get through the host's proxy,
// linked in and out of process, and reports the p50 and p99 latency.
func BenchmarkUnaryCall(b *testing.B) {
	for _, tc := range []struct {
		name   string
		spec   func(b *testing.B) Spec
		direct bool // bypass the host's proxy: the sdk client alone
	}{
		{"linked", func(*testing.B) Spec { return Spec{Name: "bench", ID: memStoreID, Mode: ModeLinked} }, false},
		{"process", func(b *testing.B) Spec { return processSpec(b, "bench", "memstore") }, false},
		{"process-sdk-direct", func(b *testing.B) Spec { return processSpec(b, "bench", "memstore") }, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, _ := newTestHost(b)
			p := launch(b, h, tc.spec(b))
			st, err := p.Store()
			if err != nil {
				b.Fatal(err)
			}
			if tc.direct {
				st = p.cur.store
			}
			ctx := context.Background()
			key := []byte("bench/key")
			if err := st.Put(ctx, key, make([]byte, 100)); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := st.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkLaunch measures starting a plugin process (checksum, handshake,
// Describe, Configure, Start) and stopping it again.
func BenchmarkLaunch(b *testing.B) {
	h, _ := newTestHost(b)
	spec := processSpec(b, "bench-launch", "memstore")
	var launchTotal time.Duration
	for range b.N {
		t0 := time.Now()
		p := launch(b, h, spec)
		launchTotal += time.Since(t0)
		if err := p.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		h.forget(p)
	}
	b.ReportMetric(float64(launchTotal.Microseconds())/float64(b.N)/1e3, "launch-ms")
}
