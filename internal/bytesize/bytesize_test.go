package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      any
		want    int64
		wantErr string
	}{
		{"int", 1024, 1024, ""},
		{"whole float64 (JSON)", float64(4096), 4096, ""},
		{"MiB", "64MiB", 64 << 20, ""},
		{"lower case, spaces", " 16 kib ", 16 << 10, ""},
		{"decimal unit", "1.5GB", 1_500_000_000, ""},
		{"plain string", "1048576", 1 << 20, ""},
		{"zero", 0, 0, ""},
		{"negative", -1, 0, "negative"},
		{"fraction of a byte", "0.5", 0, "whole number"},
		{"unknown unit", "12 parsecs", 0, "must be a size"},
		{"no number", "MiB", 0, "must be a size"},
		{"too large", "2048TiB", 0, "too large"},
		{"wrong type", true, 0, "bool"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%v) = %d, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%v) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1 << 10, 3 << 19, 64 << 20, 5 << 30, 1 << 40} {
		s := Format(n)
		got, err := Parse(s)
		if err != nil || got != n {
			t.Fatalf("Parse(Format(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
	if s := Format(64 << 20); s != "64MiB" {
		t.Fatalf("Format(64<<20) = %q, want 64MiB", s)
	}
}
