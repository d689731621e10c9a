package simnet

import (
	"testing"
	"time"
)

// TestAdmitQueuesBehindBandwidth checks the arithmetic of a link's
// bandwidth on simulated instants (no wall clock involved).
func TestAdmitQueuesBehindBandwidth(t *testing.T) {
	t0 := time.Unix(1000, 0)
	lat := 10 * time.Millisecond
	cases := []struct {
		name string
		bw   int64
		sent []time.Duration // offsets from t0 of three 1,000-byte sends
		want []time.Duration // arrival offsets
	}{
		{"unlimited", 0, []time.Duration{0, 0, 0}, []time.Duration{lat, lat, lat}},
		// 1,000 B at 100 kB/s = 10 ms each: back to back they queue.
		{"queued", 100_000, []time.Duration{0, 0, 0}, []time.Duration{20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond}},
		// Spaced wider than their transfer time: no queueing.
		{"spaced", 100_000, []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond}, []time.Duration{20 * time.Millisecond, 70 * time.Millisecond, 120 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := New()
			defer n.Close()
			for i, s := range tc.sent {
				now := t0.Add(s)
				n.mu.Lock()
				got := n.admitLocked("a", "b", now, now.Add(lat), 1000, tc.bw).Sub(t0)
				n.mu.Unlock()
				if got != tc.want[i] {
					t.Fatalf("send %d arrives at %s, want %s", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestTransferTime(t *testing.T) {
	n := New(WithDefaultLink(Link{Latency: 5 * time.Millisecond, Bandwidth: 1000}))
	defer n.Close()
	n.SetLink("a", "c", Link{Latency: time.Millisecond})
	got := n.transferTime("a", map[string]int{"b": 500, "c": 1 << 20})
	if want := 10*time.Millisecond + 500*time.Millisecond; got != want {
		t.Fatalf("transfer time %s, want %s (b: 2x5ms + 500B at 1kB/s)", got, want)
	}
}
