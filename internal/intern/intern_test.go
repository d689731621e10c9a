package intern

import "testing"

func TestTable(t *testing.T) {
	var tb Table[int, string]
	if got := tb.Add(1, "a", nil); got != "a" {
		t.Fatalf("off: Add = %q", got)
	}
	if _, ok := tb.Get(1); ok {
		t.Fatal("off: the table kept a value")
	}
	tb.SetSize(4) // two generations of 2
	tests := []struct {
		name    string
		k       int
		v       string
		same    func(string) bool
		want    string
		present []int // keys Get finds afterwards
		absent  []int
	}{
		{"first", 1, "a", nil, "a", []int{1}, nil},
		{"the same key again shares the first", 1, "a2", nil, "a", []int{1}, nil},
		{"a value same refuses is replaced", 1, "a3", func(string) bool { return false }, "a3", []int{1}, nil},
		{"second fills the newer generation", 2, "b", nil, "b", []int{1, 2}, nil},
		{"third starts a new generation, keeps the old", 3, "c", nil, "c", []int{1, 2, 3}, nil},
		{"fourth joins the newer generation", 4, "d", nil, "d", []int{3, 4}, nil},
		{"fifth drops the oldest generation", 5, "e", nil, "e", []int{3, 4, 5}, []int{1, 2}},
	}
	for _, tc := range tests {
		if got := tb.Add(tc.k, tc.v, tc.same); got != tc.want {
			t.Fatalf("%s: Add = %q, want %q", tc.name, got, tc.want)
		}
		for _, k := range tc.present {
			if _, ok := tb.Get(k); !ok {
				t.Fatalf("%s: %d not kept", tc.name, k)
			}
		}
		for _, k := range tc.absent {
			if _, ok := tb.Get(k); ok {
				t.Fatalf("%s: %d still kept", tc.name, k)
			}
		}
	}
	tb.SetSize(0)
	if _, ok := tb.Get(5); ok || tb.Size() != 0 {
		t.Fatal("SetSize(0) did not empty the table")
	}
}
