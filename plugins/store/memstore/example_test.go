package memstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

func Example() {
	ctx := context.Background()
	st := memstore.New()
	_ = st.Put(ctx, []byte("k"), []byte("v"))
	v, _ := st.Get(ctx, []byte("k"))
	_, err := st.Get(ctx, []byte("absent"))
	fmt.Println(string(v), errors.Is(err, sdk.ErrNotFound))
	// Output: v true
}
