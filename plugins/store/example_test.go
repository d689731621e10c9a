package store_test

import (
	"context"
	"fmt"
	"os"

	"github.com/skein-p2p/skein/plugins/store"
	"github.com/skein-p2p/skein/sdk"
)

// Open the pebble store linked in, write a synced batch and read it back
// by prefix.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "skein-store-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Stop(ctx)

	ops := []sdk.Op{
		{Key: []byte("group/b"), Value: []byte("2")},
		{Key: []byte("group/a"), Value: []byte("1")},
		{Key: []byte("other"), Value: []byte("x")},
	}
	if err := st.Batch(ctx, ops, true); err != nil { // durable when it returns
		fmt.Println(err)
		return
	}
	for kv, err := range st.Query(ctx, sdk.Query{Prefix: []byte("group/")}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s=%s\n", kv.Key, kv.Value)
	}
	// Output:
	// group/a=1
	// group/b=2
}

// Configure the plugin from its config subtree, as the node does.
func ExamplePebble_Configure() {
	diags, _ := store.New().Configure(context.Background(), map[string]any{"cache_size": "lots"})
	for _, d := range diags {
		fmt.Printf("%s: %s\n", d.Key, d.Message)
	}
	// Output:
	// path: required: the data directory of the store
	// cache_size: must be a size such as 67108864, "64MiB" or "1GB", got "lots"
}
