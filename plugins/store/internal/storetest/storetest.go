// Package storetest is the store packages' own table-driven semantics suite,
// run against the pebble store and the in-memory store alike. (The
// cross-plugin conformance suite is sdk/plugintest; this one goes deeper into
// what both implementations here promise: empty keys rejected, copies in and
// out, snapshot queries, atomic batches under concurrency.)
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/skein-p2p/skein/sdk"
)

// Open returns a fresh, empty, started store; it registers its own cleanup.
type Open func(t testing.TB) sdk.Store

// Run runs every semantics test against stores made by open.
func Run(t *testing.T, open Open) {
	t.Run("Basic", func(t *testing.T) { testBasic(t, open) })
	t.Run("EmptyKey", func(t *testing.T) { testEmptyKey(t, open) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, open) })
	t.Run("Batch", func(t *testing.T) { testBatch(t, open) })
	t.Run("Query", func(t *testing.T) { testQuery(t, open) })
	t.Run("QuerySnapshot", func(t *testing.T) { testQuerySnapshot(t, open) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
}

// MustPut puts key=value or fails the test.
func MustPut(t testing.TB, s sdk.Store, key, value string) {
	t.Helper()
	if err := s.Put(context.Background(), []byte(key), []byte(value)); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

// MustGet returns the value under key or fails the test.
func MustGet(t testing.TB, s sdk.Store, key string) string {
	t.Helper()
	v, err := s.Get(context.Background(), []byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(v)
}

// Collect drains a query into key/value strings, failing on an error.
func Collect(t testing.TB, seq iter.Seq2[sdk.KeyValue, error]) (keys, values []string) {
	t.Helper()
	for kv, err := range seq {
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		keys = append(keys, string(kv.Key))
		if kv.Value != nil {
			values = append(values, string(kv.Value))
		} else {
			values = append(values, "<nil>")
		}
	}
	return keys, values
}

type step struct {
	op    string // put, del, get, has, missing
	key   string
	value string
	has   bool
}

func testBasic(t *testing.T, open Open) {
	big := string(bytes.Repeat([]byte{0xab}, 1<<20))
	tests := []struct {
		name  string
		steps []step
	}{
		{"get missing is ErrNotFound", []step{{op: "missing", key: "nope"}}},
		{"put then get", []step{{op: "put", key: "a", value: "1"}, {op: "get", key: "a", value: "1"}}},
		{"overwrite", []step{{op: "put", key: "a", value: "1"}, {op: "put", key: "a", value: "22"}, {op: "get", key: "a", value: "22"}}},
		{"empty value", []step{{op: "put", key: "a", value: ""}, {op: "get", key: "a", value: ""}, {op: "has", key: "a", has: true}}},
		{"binary key", []step{{op: "put", key: "\x00\xff\x00", value: "z"}, {op: "get", key: "\x00\xff\x00", value: "z"}, {op: "missing", key: "\x00\xff"}}},
		{"large value", []step{{op: "put", key: "big", value: big}, {op: "get", key: "big", value: big}}},
		{"delete present", []step{{op: "put", key: "a", value: "1"}, {op: "del", key: "a"}, {op: "missing", key: "a"}, {op: "has", key: "a", has: false}}},
		{"delete absent is fine", []step{{op: "del", key: "ghost"}, {op: "missing", key: "ghost"}}},
		{"has", []step{{op: "has", key: "a", has: false}, {op: "put", key: "a", value: "x"}, {op: "has", key: "a", has: true}}},
		{"put after delete", []step{{op: "put", key: "a", value: "1"}, {op: "del", key: "a"}, {op: "put", key: "a", value: "2"}, {op: "get", key: "a", value: "2"}}},
		{"keys differ by a trailing byte", []step{{op: "put", key: "ab", value: "1"}, {op: "missing", key: "a"}, {op: "missing", key: "abc"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			for i, st := range tc.steps {
				k := []byte(st.key)
				switch st.op {
				case "put":
					if err := s.Put(ctx, k, []byte(st.value)); err != nil {
						t.Fatalf("step %d put: %v", i, err)
					}
				case "del":
					if err := s.Delete(ctx, k); err != nil {
						t.Fatalf("step %d delete: %v", i, err)
					}
				case "get":
					v, err := s.Get(ctx, k)
					if err != nil {
						t.Fatalf("step %d get: %v", i, err)
					}
					if string(v) != st.value {
						t.Fatalf("step %d get %q: got %d bytes, want %d", i, st.key, len(v), len(st.value))
					}
				case "missing":
					v, err := s.Get(ctx, k)
					if !errors.Is(err, sdk.ErrNotFound) {
						t.Fatalf("step %d get %q: got (%q, %v), want sdk.ErrNotFound", i, st.key, v, err)
					}
				case "has":
					h, err := s.Has(ctx, k)
					if err != nil || h != st.has {
						t.Fatalf("step %d has %q: got (%v, %v), want %v", i, st.key, h, err, st.has)
					}
				}
			}
		})
	}
}

func testEmptyKey(t *testing.T, open Open) {
	s := open(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := s.Get(ctx, nil); return err }},
		{"put", func() error { return s.Put(ctx, []byte{}, []byte("v")) }},
		{"delete", func() error { return s.Delete(ctx, nil) }},
		{"has", func() error { _, err := s.Has(ctx, nil); return err }},
		{"batch", func() error { return s.Batch(ctx, []sdk.Op{{Key: nil, Value: []byte("v")}}, false) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("empty key: err = %v, want sdk.ErrInvalidArgument", err)
			}
		})
	}
}

func testCopies(t *testing.T, open Open) {
	s := open(t)
	ctx := context.Background()
	key, val := []byte("k"), []byte("value")
	if err := s.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // the store must have copied the input
	key[0] = 'j'
	got, err := s.Get(ctx, []byte("k"))
	if err != nil || string(got) != "value" {
		t.Fatalf("after mutating the input: got (%q, %v), want \"value\"", got, err)
	}
	got[0] = 'Y' // and hand out copies
	if v := MustGet(t, s, "k"); v != "value" {
		t.Fatalf("after mutating a returned value: got %q", v)
	}
	var held []sdk.KeyValue
	for kv, err := range s.Query(ctx, sdk.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, kv)
	}
	MustPut(t, s, "k", "other")
	if len(held) != 1 || string(held[0].Key) != "k" || string(held[0].Value) != "value" {
		t.Fatalf("query results changed after a later write: %q", held)
	}
	held[0].Value[0] = 'Z'
	if v := MustGet(t, s, "k"); v != "other" {
		t.Fatalf("mutating a query result changed the store: %q", v)
	}
}

func testBatch(t *testing.T, open Open) {
	tests := []struct {
		name    string
		seed    map[string]string
		ops     []sdk.Op
		sync    bool
		wantErr bool
		want    map[string]string // the whole store afterwards
	}{
		{name: "empty", ops: nil, want: map[string]string{}},
		{name: "empty synced", ops: []sdk.Op{}, sync: true, want: map[string]string{}},
		{name: "puts", ops: []sdk.Op{put("a", "1"), put("b", "2")}, want: map[string]string{"a": "1", "b": "2"}},
		{name: "puts synced", ops: []sdk.Op{put("a", "1"), put("b", "2")}, sync: true, want: map[string]string{"a": "1", "b": "2"}},
		{name: "deletes", seed: map[string]string{"a": "1", "b": "2"}, ops: []sdk.Op{del("a"), del("zz")}, want: map[string]string{"b": "2"}},
		{name: "later op wins", ops: []sdk.Op{put("a", "1"), put("a", "2"), put("b", "1"), del("b")}, want: map[string]string{"a": "2"}},
		{name: "delete then put", seed: map[string]string{"a": "0"}, ops: []sdk.Op{del("a"), put("a", "3")}, want: map[string]string{"a": "3"}},
		{name: "empty key fails whole batch", seed: map[string]string{"a": "0"},
			ops: []sdk.Op{put("a", "1"), put("b", "1"), {Key: nil, Value: []byte("x")}, del("a")}, wantErr: true,
			want: map[string]string{"a": "0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			for k, v := range tc.seed {
				MustPut(t, s, k, v)
			}
			err := s.Batch(ctx, tc.ops, tc.sync)
			if (err != nil) != tc.wantErr {
				t.Fatalf("batch: err = %v, wantErr %v", err, tc.wantErr)
			}
			keys, vals := Collect(t, s.Query(ctx, sdk.Query{}))
			got := map[string]string{}
			for i := range keys {
				got[keys[i]] = vals[i]
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("store after batch = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("large batch", func(t *testing.T) {
		s := open(t)
		ops := make([]sdk.Op, 0, 20000)
		for i := range 20000 {
			ops = append(ops, sdk.Op{Key: fmt.Appendf(nil, "k%06d", i), Value: bytes.Repeat([]byte{byte(i)}, 100)})
		}
		if err := s.Batch(context.Background(), ops, true); err != nil {
			t.Fatal(err)
		}
		keys, _ := Collect(t, s.Query(context.Background(), sdk.Query{Prefix: []byte("k"), KeysOnly: true}))
		if len(keys) != len(ops) {
			t.Fatalf("got %d keys, want %d", len(keys), len(ops))
		}
	})
}

func put(k, v string) sdk.Op { return sdk.Op{Key: []byte(k), Value: []byte(v)} }
func del(k string) sdk.Op    { return sdk.Op{Key: []byte(k), Delete: true} }

func testQuery(t *testing.T, open Open) {
	s := open(t)
	ctx := context.Background()
	all := []string{"a", "a/1", "a/2", "a/10", "a\xff", "a\xff\xff", "a\xff\x00", "ab", "b", "b/1", "\xff", "\xff\xff", "\x00", "c\x00"}
	shuffled := slices.Clone(all)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		MustPut(t, s, k, "v:"+k)
	}
	matching := func(prefix string, limit int) []string {
		var out []string
		for _, k := range slices.Sorted(slices.Values(all)) {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				if limit > 0 && len(out) == limit {
					break
				}
				out = append(out, k)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		prefix   string
		limit    int
		keysOnly bool
	}{
		{"everything", "", 0, false},
		{"prefix a", "a", 0, false},
		{"prefix a/", "a/", 0, false},
		{"prefix with 0xff tail", "a\xff", 0, false},
		{"prefix all 0xff", "\xff", 0, false},
		{"prefix 0x00", "\x00", 0, false},
		{"no match", "zzz", 0, false},
		{"exact key is a prefix of itself", "ab", 0, false},
		{"limit 2", "a", 2, false},
		{"limit 1 everything", "", 1, false},
		{"limit larger than matches", "b", 10, false},
		{"keys only", "a/", 0, true},
		{"keys only with limit", "", 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, vals := Collect(t, s.Query(ctx, sdk.Query{Prefix: []byte(tc.prefix), Limit: tc.limit, KeysOnly: tc.keysOnly}))
			want := matching(tc.prefix, tc.limit)
			if !slices.Equal(keys, want) {
				t.Fatalf("keys = %q, want %q", keys, want)
			}
			for i, k := range keys {
				wantV := "v:" + k
				if tc.keysOnly {
					// KeysOnly: a value may be omitted (nil or empty) but never wrong.
					if vals[i] != "<nil>" && vals[i] != "" {
						t.Fatalf("keys-only query returned value %q for %q", vals[i], k)
					}
					continue
				}
				if vals[i] != wantV {
					t.Fatalf("value of %q = %q, want %q", k, vals[i], wantV)
				}
			}
		})
	}

	t.Run("break early", func(t *testing.T) {
		n := 0
		for _, err := range s.Query(ctx, sdk.Query{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 3 {
				break
			}
		}
		if n != 3 {
			t.Fatalf("got %d results before break, want 3", n)
		}
		// the store must still work (the query released what it held)
		MustPut(t, s, "after-break", "x")
	})

	t.Run("negative limit is an error", func(t *testing.T) {
		var gotErr error
		for _, err := range s.Query(ctx, sdk.Query{Limit: -1}) {
			if err != nil {
				gotErr = err
				break
			}
		}
		if !errors.Is(gotErr, sdk.ErrInvalidArgument) {
			t.Fatalf("negative limit: err = %v, want sdk.ErrInvalidArgument", gotErr)
		}
	})
}

// testQuerySnapshot: writes made while a query is being consumed are not
// seen by it, and a batch is never seen half-applied.
func testQuerySnapshot(t *testing.T, open Open) {
	s := open(t)
	ctx := context.Background()
	for i := range 10 {
		MustPut(t, s, fmt.Sprintf("s/%02d", i), "old")
	}
	next, stop := iter.Pull2(s.Query(ctx, sdk.Query{Prefix: []byte("s/")}))
	defer stop()
	kv, err, ok := next()
	if !ok || err != nil || string(kv.Key) != "s/00" {
		t.Fatalf("first result = %q, %v, %v", kv.Key, err, ok)
	}
	ops := []sdk.Op{}
	for i := range 10 {
		ops = append(ops, put(fmt.Sprintf("s/%02d", i), "new"), put(fmt.Sprintf("s/%02d-extra", i), "new"))
	}
	if err := s.Batch(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	n := 1
	for {
		kv, err, ok := next()
		if !ok {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(kv.Value) != "old" {
			t.Fatalf("query saw a later write: %q=%q", kv.Key, kv.Value)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("query returned %d results, want the 10 of its snapshot", n)
	}
}

func testCanceled(t *testing.T, open Open) {
	s := open(t)
	MustPut(t, s, "a", "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := s.Get(ctx, []byte("a")); return err }},
		{"put", func() error { return s.Put(ctx, []byte("a"), []byte("2")) }},
		{"delete", func() error { return s.Delete(ctx, []byte("a")) }},
		{"has", func() error { _, err := s.Has(ctx, []byte("a")); return err }},
		{"batch", func() error { return s.Batch(ctx, []sdk.Op{put("a", "3")}, true) }},
		{"sync", func() error { return s.Sync(ctx) }},
		{"query", func() error {
			for _, err := range s.Query(ctx, sdk.Query{}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		})
	}
	if v := MustGet(t, s, "a"); v != "1" {
		t.Fatalf("a canceled write landed: a=%q", v)
	}
}

// testConcurrent: writers on their own keys, batch writers keeping an
// invariant (pair/x/i and pair/y/i always written together), and readers
// checking the invariant on every snapshot.
func testConcurrent(t *testing.T, open Open) {
	s := open(t)
	ctx := context.Background()
	const writers, perWriter, batches = 4, 200, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := fmt.Appendf(nil, "w%d/%04d", w, i)
				if err := s.Put(ctx, k, k); err != nil {
					errs <- err
					return
				}
				v, err := s.Get(ctx, k)
				if err != nil || !bytes.Equal(v, k) {
					errs <- fmt.Errorf("read own write %s: %q, %v", k, v, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range batches {
			ops := []sdk.Op{put(fmt.Sprintf("pair/x/%04d", i), "1"), put(fmt.Sprintf("pair/y/%04d", i), "1")}
			if err := s.Batch(ctx, ops, i%10 == 0); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			var x, y int
			for kv, err := range s.Query(ctx, sdk.Query{Prefix: []byte("pair/"), KeysOnly: true}) {
				if err != nil {
					errs <- err
					return
				}
				if kv.Key[5] == 'x' {
					x++
				} else {
					y++
				}
			}
			if x != y {
				errs <- fmt.Errorf("query saw a half-applied batch: %d x keys, %d y keys", x, y)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys, _ := Collect(t, s.Query(ctx, sdk.Query{KeysOnly: true}))
	if want := writers*perWriter + 2*batches; len(keys) != want {
		t.Fatalf("store holds %d keys, want %d", len(keys), want)
	}
	if !slices.IsSorted(keys) {
		t.Fatal("keys out of order")
	}
}
