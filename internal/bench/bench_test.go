package bench

import (
	"math"
	"os"
	"testing"
)

func TestMedianAndPercentile(t *testing.T) {
	tests := []struct {
		name     string
		vs       []float64
		med, p99 float64
	}{
		{"one", []float64{3}, 3, 3},
		{"odd", []float64{5, 1, 3}, 3, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.vs); got != tt.med {
				t.Errorf("median = %v, want %v", got, tt.med)
			}
			if got := percentile(tt.vs, 99); got != tt.p99 {
				t.Errorf("p99 = %v, want %v", got, tt.p99)
			}
		})
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestBodyRoundTrip(t *testing.T) {
	for _, i := range []int{0, 7, 99999999} {
		b := body("d03", i, 200)
		if len(b) != 200 {
			t.Fatalf("body is %d bytes", len(b))
		}
		if got := msgIndex("d03", b); got != i {
			t.Errorf("msgIndex(body(%d)) = %d", i, got)
		}
		if got := msgIndex("d04", b); got != -1 {
			t.Errorf("another tag read %d", got)
		}
	}
	if got := msgIndex("a", []byte("a-")); got != -1 {
		t.Errorf("a short body read %d", got)
	}
}

func TestFigureFraction(t *testing.T) {
	b := &bench{}
	rate := b.figure("r", "msg/s", []float64{100, 300, 200}, &target{atLeast: true, value: 150}, "sign", 1000, true)
	if rate.Value != 200 || rate.Fraction != 0.2 || rate.Met == nil || !*rate.Met {
		t.Errorf("rate figure = %+v", rate)
	}
	tm := b.figure("t", "ms", []float64{4}, &target{value: 1}, "rtt", 0.5, false)
	if tm.Fraction != 0.125 || *tm.Met {
		t.Errorf("time figure = %+v", tm)
	}
	none := b.figure("n", "ms", []float64{math.NaN()}, nil, "", 0, false)
	if len(none.Runs) != 0 || none.Value != 0 {
		t.Errorf("NaN runs kept: %+v", none)
	}
}

func TestFmtNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0123: "0.0123", 1.5: "1.50", 12.34: "12.3", 123.4: "123", 12345: "12,345", 1234567: "1,234,567", -2500: "-2,500"} {
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTCPPort(t *testing.T) {
	if got := tcpPort("/ip4/127.0.0.1/tcp/4001/p2p/12D3"); got != "4001" {
		t.Errorf("tcpPort = %q", got)
	}
	if got := tcpPort("/ip4/127.0.0.1/udp/4001/quic-v1"); got != "" {
		t.Errorf("tcpPort of quic = %q", got)
	}
}

func TestSSTotalCountsEachConnectionOnce(t *testing.T) {
	out := "0      0      127.0.0.1:4001 127.0.0.1:4002\n\t cubic bytes_sent:100 bytes_acked:100 bytes_received:50 segs_out:3\n" +
		"0      0      127.0.0.1:4001 127.0.0.1:5000\n\t cubic bytes_received:7\n"
	seen := map[string]bool{}
	if got := ssTotal(out, seen); got != 157 {
		t.Errorf("first end: %d, want 157", got)
	}
	other := "0      0      127.0.0.1:4002 127.0.0.1:4001\n\t cubic bytes_sent:50 bytes_received:100\n"
	if got := ssTotal(other, seen); got != 0 {
		t.Errorf("the other end of a counted connection: %d, want 0", got)
	}
}

// The binary-once count of a process tree is positive and no more than its
// summed RSS (a single process: anonymous plus file-backed is its RSS).
func TestTreeMemoryCountsTheBinaryOnce(t *testing.T) {
	m := treeMemory(os.Getpid())
	if m.RSS == 0 || m.Once == 0 {
		t.Fatalf("treeMemory(self) = %+v, want both counted", m)
	}
	if m.Once > m.RSS {
		t.Fatalf("binary once %d > summed RSS %d", m.Once, m.RSS)
	}
}
