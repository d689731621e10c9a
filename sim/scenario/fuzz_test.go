package scenario

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: any file is a scenario or an *InvalidError, never a panic,
// and a scenario that parses has a plan.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("nodes: 3\npartitions: [{at: 1s, sides: [0-1, 1-2]}]\n"))
	f.Add([]byte("nodes: 2\nregions: {a: [0, \"50%-100%\"]}\nlinks: {regions: [{between: [a, a], loss: 1}]}\n"))
	f.Add([]byte("nodes: &a 3\nseed: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yaml", data, "f")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if s.Nodes > 1000 {
			return // the plan of a huge scenario is slow, not wrong
		}
		if _, err := s.Plan(); err != nil {
			t.Fatalf("parsed, but no plan: %v", err)
		}
	})
}
