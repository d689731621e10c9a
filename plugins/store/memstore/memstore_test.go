package memstore

import (
	"context"
	"errors"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/internal/storetest"
	"github.com/skein-p2p/skein/sdk"
)

func openMem(t testing.TB) sdk.Store {
	t.Helper()
	s := New()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func TestSemantics(t *testing.T) { storetest.Run(t, openMem) }

func TestConfigure(t *testing.T) {
	tests := []struct {
		name     string
		config   map[string]any
		wantKeys []string
	}{
		{"nil", nil, nil},
		{"empty", map[string]any{}, nil},
		{"unknown keys named in order", map[string]any{"path": "/x", "b": 1}, []string{"b", "path"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diags, err := New().Configure(context.Background(), tc.config)
			if err != nil {
				t.Fatal(err)
			}
			if len(diags) != len(tc.wantKeys) {
				t.Fatalf("diagnostics %v, want keys %v", diags, tc.wantKeys)
			}
			for i, d := range diags {
				if d.Key != tc.wantKeys[i] || d.Severity != sdk.SeverityError {
					t.Fatalf("diagnostic %d = %+v, want an error for %q", i, d, tc.wantKeys[i])
				}
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := New()
	d, err := s.Describe(ctx)
	if err != nil || d.ID != ID || len(d.Kinds) != 1 || d.Kinds[0] != sdk.KindStore {
		t.Fatalf("describe = %+v, %v", d, err)
	}
	if err := s.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put before start: %v", err)
	}
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	if _, err := s.Get(ctx, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after stop: %v, want ErrClosed", err)
	}
	if st, _ := s.Status(ctx); st.Healthy {
		t.Fatal("stopped store reports healthy")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("data lost across stop/start: %q, %v", v, err)
	}
	if st, _ := s.Status(ctx); !st.Healthy || st.Details["keys"] != "1" {
		t.Fatalf("status = %+v", st)
	}
}
