package simnet

import (
	"math/rand/v2"
	"testing"
)

// TestSeenWindowMatchesASet: within its window the bitmap answers as a set
// of every sequence number marked would.
func TestSeenWindowMatchesASet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var w seenWindow
	set := map[uint64]bool{}
	var max uint64
	for range 100000 {
		seq := max + uint64(r.IntN(300)) - 150
		if seq > 1<<62 || seq == 0 { // wrapped below zero
			seq = 1
		}
		if r.IntN(20) == 0 {
			seq = max + uint64(r.IntN(600)) // a jump, sometimes past the window
		}
		inWindow := seq > max || max-seq < 256
		was := w.mark(seq)
		if inWindow && was != set[seq] {
			t.Fatalf("mark(%d) (max %d) = %v, set says %v", seq, max, was, set[seq])
		}
		if !inWindow && !was {
			t.Fatalf("mark(%d) below the window (max %d) = false", seq, max)
		}
		set[seq] = true
		max = w.max
		if !w.has(seq) {
			t.Fatalf("has(%d) after mark = false", seq)
		}
	}
}
