package peersource

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestBook(t *testing.T) {
	b := NewBook(3)
	steps := []struct {
		peer, source string
	}{
		{"a", "mdns"}, {"a", Manual}, {"a", "mdns"}, {"b", Bootstrap}, {"", "mdns"}, {"c", ""}, {"c", DHT},
	}
	for _, s := range steps {
		b.Record(s.peer, s.source)
	}
	cases := []struct {
		peer string
		want []string
	}{
		{"a", []string{"mdns", Manual}},
		{"b", []string{Bootstrap}},
		{"c", []string{DHT}},
		{"", nil},
		{"unknown", nil},
	}
	for _, tc := range cases {
		if got := b.Sources(tc.peer); !slices.Equal(got, tc.want) {
			t.Errorf("Sources(%q) = %q, want %q", tc.peer, got, tc.want)
		}
	}
	// Full: the least recently recorded (b) goes first.
	b.Record("a", "mdns")
	b.Record("d", "mdns")
	if b.Len() != 3 || b.Sources("b") != nil || b.Sources("a") == nil {
		t.Fatalf("after overflow: len %d, b %q, a %q", b.Len(), b.Sources("b"), b.Sources("a"))
	}
	var nilBook *Book
	nilBook.Record("x", "y")
	if nilBook.Sources("x") != nil || nilBook.Len() != 0 {
		t.Fatal("a nil book is not empty")
	}
}

func TestBookConcurrent(t *testing.T) {
	b := NewBook(100)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				b.Record(fmt.Sprint(j%300), fmt.Sprint(i%3))
				_ = b.Sources(fmt.Sprint(j % 300))
			}
		})
	}
	wg.Wait()
	if b.Len() > 100 {
		t.Fatalf("%d peers, want at most 100", b.Len())
	}
}
