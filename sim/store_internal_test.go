package sim

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

// TestShortKeysIsInvisible: a store with abbreviated group keys answers
// every call as the plain store does (same keys, values, order and
// limits), whatever the keys and prefixes.
func TestShortKeysIsInvisible(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	groups := make([]string, 3)
	for i := range groups {
		var id [32]byte
		for j := range id {
			id[j] = byte(rng.IntN(256))
		}
		groups[i] = "group/" + hex.EncodeToString(id[:]) + "/"
	}
	keyOf := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return fmt.Appendf(nil, "keys/%d", rng.IntN(20))
		case 1:
			return fmt.Appendf(nil, "groupx/%d", rng.IntN(20))
		default:
			return fmt.Appendf(nil, "%s%s/%d", groups[rng.IntN(len(groups))], []string{"meta/", "messages/", "local/m/"}[rng.IntN(3)], rng.IntN(20))
		}
	}
	plain, short := memstore.New(), newShortKeys(memstore.New())
	for i := range 600 {
		k, v := keyOf(), fmt.Appendf(nil, "v%d", i)
		switch rng.IntN(5) {
		case 0:
			for _, s := range []sdk.Store{plain, short} {
				if err := s.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		case 1:
			ops := []sdk.Op{{Key: k, Value: v}, {Key: keyOf(), Delete: true}, {Key: keyOf(), Value: v}}
			for _, s := range []sdk.Store{plain, short} {
				if err := s.Batch(ctx, ops, false); err != nil {
					t.Fatal(err)
				}
			}
		default:
			for _, s := range []sdk.Store{plain, short} {
				if err := s.Put(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i := range 50 {
		k := keyOf()
		a, aerr := plain.Get(ctx, k)
		b, berr := short.Get(ctx, k)
		ah, _ := plain.Has(ctx, k)
		bh, _ := short.Has(ctx, k)
		if !bytes.Equal(a, b) || (aerr == nil) != (berr == nil) || ah != bh {
			t.Fatalf("get %d %q: %q %v / %q %v", i, k, a, aerr, b, berr)
		}
	}
	prefixes := []string{"", "g", "group/", "groupx/", "keys/", groups[0], groups[1] + "meta/", groups[2][:20], groups[0] + "meta/1"}
	for _, p := range prefixes {
		for _, limit := range []int{0, 1, 7} {
			q := sdk.Query{Prefix: []byte(p), Limit: limit}
			var want, got []string
			for kv, err := range plain.Query(ctx, q) {
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, string(kv.Key)+"="+string(kv.Value))
			}
			for kv, err := range short.Query(ctx, q) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(kv.Key)+"="+string(kv.Value))
			}
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Fatalf("query %q limit %d:\n got %v\nwant %v", p, limit, got, want)
			}
		}
	}
}
