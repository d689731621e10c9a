package plugintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// TestStore runs the store conformance suite. open returns a started store
// for a subtest; it may return the same store to every subtest (each
// subtest keeps to keys under its own prefix, "conformance/<subtest>/"),
// so one plugin process can serve the whole suite.
//
// What it requires beyond the sdk.Store doc comments:
//   - Get of an absent key fails with an error matching sdk.ErrNotFound.
//   - A value written empty reads back empty (not ErrNotFound).
//   - The store copies what it is given and what it returns.
//   - The empty key is either rejected with an error or stored like any key.
//   - A call with an already cancelled context fails with an error matching
//     context.Canceled (Get, Put, Has, Delete, Batch, Query).
//   - Query sees a batch entirely or not at all.
func TestStore(t *testing.T, open func(t testing.TB) sdk.Store) {
	t.Helper()
	for _, tc := range storeCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t), "conformance/"+tc.name+"/")
		})
	}
}

type storeCase struct {
	name string
	run  func(t *testing.T, s sdk.Store, p string)
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, s sdk.Store, k, v string) {
	t.Helper()
	if err := s.Put(testCtx(t), []byte(k), []byte(v)); err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
}

func mustGet(t testing.TB, s sdk.Store, k string) []byte {
	t.Helper()
	v, err := s.Get(testCtx(t), []byte(k))
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return v
}

func collect(t testing.TB, s sdk.Store, q sdk.Query) []sdk.KeyValue {
	t.Helper()
	var out []sdk.KeyValue
	for kv, err := range s.Query(testCtx(t), q) {
		if err != nil {
			t.Fatalf("query %q: %v", q.Prefix, err)
		}
		out = append(out, kv)
	}
	return out
}

func keysOf(kvs []sdk.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

var storeCases = []storeCase{
	{"GetAbsentIsNotFound", func(t *testing.T, s sdk.Store, p string) {
		_, err := s.Get(testCtx(t), []byte(p+"absent"))
		if !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("get absent: err = %v, want sdk.ErrNotFound", err)
		}
		ok, err := s.Has(testCtx(t), []byte(p+"absent"))
		if err != nil || ok {
			t.Fatalf("has absent = %v, %v; want false, nil", ok, err)
		}
	}},
	{"PutGetOverwrite", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"k", "v1")
		if got := mustGet(t, s, p+"k"); string(got) != "v1" {
			t.Fatalf("get = %q, want v1", got)
		}
		mustPut(t, s, p+"k", "v2")
		if got := mustGet(t, s, p+"k"); string(got) != "v2" {
			t.Fatalf("get after overwrite = %q, want v2", got)
		}
		ok, err := s.Has(testCtx(t), []byte(p+"k"))
		if err != nil || !ok {
			t.Fatalf("has = %v, %v; want true, nil", ok, err)
		}
	}},
	{"EmptyValue", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"empty", "")
		v := mustGet(t, s, p+"empty")
		if len(v) != 0 {
			t.Fatalf("get empty value = %q", v)
		}
	}},
	{"BinaryKeys", func(t *testing.T, s sdk.Store, p string) {
		keys := [][]byte{{0x00}, {0x00, 0x00}, {0xff}, {0xff, 0x00, 0xff}, {0x7f, 0x80}}
		for i := range keys {
			keys[i] = append([]byte(p), keys[i]...)
		}
		for i, k := range keys {
			if err := s.Put(testCtx(t), k, []byte{byte(i)}); err != nil {
				t.Fatalf("put %x: %v", k, err)
			}
		}
		for i, k := range keys {
			v, err := s.Get(testCtx(t), k)
			if err != nil || !bytes.Equal(v, []byte{byte(i)}) {
				t.Fatalf("get %x = %x, %v; want %x", k, v, err, []byte{byte(i)})
			}
		}
	}},
	{"EmptyKeyRejectedOrStored", func(t *testing.T, s sdk.Store, p string) {
		err := s.Put(testCtx(t), []byte{}, []byte("v"))
		if err != nil {
			return // rejected: defined behaviour
		}
		v, err := s.Get(testCtx(t), []byte{})
		if err != nil || string(v) != "v" {
			t.Fatalf("empty key accepted by Put but Get = %q, %v", v, err)
		}
		if err := s.Delete(testCtx(t), []byte{}); err != nil {
			t.Fatalf("empty key accepted by Put but Delete: %v", err)
		}
	}},
	{"Delete", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"k", "v")
		if err := s.Delete(testCtx(t), []byte(p+"k")); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := s.Get(testCtx(t), []byte(p+"k")); !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("get deleted: err = %v, want sdk.ErrNotFound", err)
		}
		if err := s.Delete(testCtx(t), []byte(p+"never-there")); err != nil {
			t.Fatalf("delete absent key: %v, want nil", err)
		}
	}},
	{"CopiesInAndOut", func(t *testing.T, s sdk.Store, p string) {
		k, v := []byte(p+"copy"), []byte("original")
		if err := s.Put(testCtx(t), k, v); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X'
		k[len(k)-1] = 'X'
		got := mustGet(t, s, p+"copy")
		if string(got) != "original" {
			t.Fatalf("store kept the caller's buffer: %q", got)
		}
		got[0] = 'Y'
		if again := mustGet(t, s, p+"copy"); string(again) != "original" {
			t.Fatalf("store returned its own buffer: %q", again)
		}
	}},
	{"Batch", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"gone", "x")
		mustPut(t, s, p+"kept", "x")
		ops := []sdk.Op{
			{Key: []byte(p + "a"), Value: []byte("1")},
			{Key: []byte(p + "b"), Value: []byte("2")},
			{Key: []byte(p + "gone"), Delete: true},
			{Key: []byte(p + "a"), Value: []byte("3")}, // later op wins
		}
		for _, sync := range []bool{false, true} {
			if err := s.Batch(testCtx(t), ops, sync); err != nil {
				t.Fatalf("batch (sync=%v): %v", sync, err)
			}
		}
		want := map[string]string{"a": "3", "b": "2", "kept": "x"}
		for k, v := range want {
			if got := mustGet(t, s, p+k); string(got) != v {
				t.Fatalf("get %q = %q, want %q", k, got, v)
			}
		}
		if _, err := s.Get(testCtx(t), []byte(p+"gone")); !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("key deleted in batch: err = %v", err)
		}
		if err := s.Batch(testCtx(t), nil, true); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		if err := s.Sync(testCtx(t)); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}},
	{"BatchAtomicUnderQuery", func(t *testing.T, s sdk.Store, p string) {
		const keys, rounds = 50, 40
		ctx := testCtx(t)
		write := func(round int) error {
			ops := make([]sdk.Op, keys)
			for i := range ops {
				ops[i] = sdk.Op{Key: fmt.Appendf(nil, "%satomic/%03d", p, i), Value: fmt.Appendf(nil, "%d", round)}
			}
			return s.Batch(ctx, ops, false)
		}
		if err := write(0); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for r := 1; r <= rounds; r++ {
				if err := write(r); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for finished := false; !finished; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("batch: %v", err)
				}
				finished = true
			default:
			}
			var first string
			n := 0
			for kv, err := range s.Query(ctx, sdk.Query{Prefix: []byte(p + "atomic/")}) {
				if err != nil {
					t.Fatalf("query: %v", err)
				}
				if n == 0 {
					first = string(kv.Value)
				} else if string(kv.Value) != first {
					t.Fatalf("query saw a partial batch: %s=%s but first key=%s", kv.Key, kv.Value, first)
				}
				n++
			}
			if n != keys {
				t.Fatalf("query saw %d keys, want %d", n, keys)
			}
		}
	}},
	{"QueryPrefixOrderLimitKeysOnly", func(t *testing.T, s sdk.Store, p string) {
		for _, k := range []string{"p/c", "p/a", "p/b", "p", "p0", "o/z", "q", "p/a/deep"} {
			mustPut(t, s, p+k, "v-"+k)
		}
		pre := func(s string) []byte { return []byte(p + s) }
		cases := []struct {
			name string
			q    sdk.Query
			want []string
		}{
			{"prefix", sdk.Query{Prefix: pre("p/")}, []string{"p/a", "p/a/deep", "p/b", "p/c"}},
			{"limit", sdk.Query{Prefix: pre("p/"), Limit: 2}, []string{"p/a", "p/a/deep"}},
			{"limit larger than matches", sdk.Query{Prefix: pre("p/"), Limit: 100}, []string{"p/a", "p/a/deep", "p/b", "p/c"}},
			{"whole subtree", sdk.Query{Prefix: pre("")}, []string{"o/z", "p", "p/a", "p/a/deep", "p/b", "p/c", "p0", "q"}},
			{"no match", sdk.Query{Prefix: pre("zzz")}, nil},
			{"keys only", sdk.Query{Prefix: pre("p/a"), KeysOnly: true}, []string{"p/a", "p/a/deep"}},
		}
		for _, c := range cases {
			got := collect(t, s, c.q)
			for i := range got {
				got[i].Key = bytes.TrimPrefix(got[i].Key, []byte(p))
			}
			if fmt.Sprint(keysOf(got)) != fmt.Sprint(c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Fatalf("%s: keys = %q, want %q", c.name, keysOf(got), c.want)
			}
			for _, kv := range got {
				if c.q.KeysOnly {
					if len(kv.Value) != 0 {
						t.Fatalf("%s: keys-only query returned value %q", c.name, kv.Value)
					}
				} else if string(kv.Value) != "v-"+string(kv.Key) {
					t.Fatalf("%s: value of %q = %q", c.name, kv.Key, kv.Value)
				}
			}
		}
	}},
	{"QueryEmptyPrefixSeesAllInOrder", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"b", "2")
		mustPut(t, s, p+"a", "1")
		all := collect(t, s, sdk.Query{KeysOnly: true})
		seen := 0
		for i, kv := range all {
			if i > 0 && bytes.Compare(all[i-1].Key, kv.Key) >= 0 {
				t.Fatalf("query not in key order: %q then %q", all[i-1].Key, kv.Key)
			}
			if bytes.HasPrefix(kv.Key, []byte(p)) {
				seen++
			}
		}
		if seen != 2 {
			t.Fatalf("query with empty prefix saw %d of this subtest's 2 keys", seen)
		}
	}},
	{"QueryEarlyStop", func(t *testing.T, s sdk.Store, p string) {
		ops := make([]sdk.Op, 2000)
		for i := range ops {
			ops[i] = sdk.Op{Key: fmt.Appendf(nil, "%smany/%05d", p, i), Value: make([]byte, 100)}
		}
		if err := s.Batch(testCtx(t), ops, false); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, err := range s.Query(testCtx(t), sdk.Query{Prefix: []byte(p + "many/")}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 10 {
				break
			}
		}
		if n != 10 {
			t.Fatalf("read %d, want 10", n)
		}
		// The store is still usable after an abandoned query.
		if got := len(collect(t, s, sdk.Query{Prefix: []byte(p + "many/")})); got != 2000 {
			t.Fatalf("full query = %d pairs, want 2000", got)
		}
	}},
	{"LargeValues", func(t *testing.T, s sdk.Store, p string) {
		for _, size := range []int{1 << 10, 1 << 20, 8 << 20} {
			v := patterned(size, byte(size))
			k := fmt.Sprintf("%slarge/%d", p, size)
			if err := s.Put(testCtx(t), []byte(k), v); err != nil {
				t.Fatalf("put %d bytes: %v", size, err)
			}
			if got := mustGet(t, s, k); !bytes.Equal(got, v) {
				t.Fatalf("get %d bytes: got %d bytes, differing", size, len(got))
			}
		}
		got := collect(t, s, sdk.Query{Prefix: []byte(p + "large/")})
		if len(got) != 3 {
			t.Fatalf("query large = %d pairs, want 3", len(got))
		}
	}},
	{"Concurrent", func(t *testing.T, s sdk.Store, p string) {
		const workers, each = 8, 100
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for i := range each {
					k := fmt.Appendf(nil, "%sconc/%d/%03d", p, w, i)
					if err := s.Put(ctx, k, k); err != nil {
						errs <- err
						return
					}
					v, err := s.Get(ctx, k)
					if err != nil || !bytes.Equal(v, k) {
						errs <- fmt.Errorf("get %s = %q, %v", k, v, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := len(collect(t, s, sdk.Query{Prefix: []byte(p + "conc/"), KeysOnly: true})); got != workers*each {
			t.Fatalf("query = %d keys, want %d", got, workers*each)
		}
	}},
	{"CancelledContext", func(t *testing.T, s sdk.Store, p string) {
		mustPut(t, s, p+"k", "v")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"get", func() error { _, err := s.Get(ctx, []byte(p+"k")); return err }},
			{"put", func() error { return s.Put(ctx, []byte(p+"k2"), []byte("v")) }},
			{"has", func() error { _, err := s.Has(ctx, []byte(p+"k")); return err }},
			{"delete", func() error { return s.Delete(ctx, []byte(p+"k")) }},
			{"batch", func() error { return s.Batch(ctx, []sdk.Op{{Key: []byte(p + "k3"), Value: []byte("v")}}, false) }},
			{"query", func() error {
				for _, err := range s.Query(ctx, sdk.Query{Prefix: []byte(p)}) {
					if err != nil {
						return err
					}
				}
				return nil
			}},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with cancelled context: err = %v, want context.Canceled", c.name, err)
			}
		}
	}},
}

// patterned returns size bytes of a pattern that no shift of itself
// matches (a 251-byte cycle seeded by seed), cheap to make and compare.
func patterned(size int, seed byte) []byte {
	var cycle [251]byte
	for i := range cycle {
		cycle[i] = byte(i*7) ^ seed
	}
	return bytes.Repeat(cycle[:], size/len(cycle)+1)[:size]
}
