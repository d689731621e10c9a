// Command skein-store serves the pebble store plugin ("store.pebble") out
// of process over Skein's plugin wire protocol. The node starts it; it is
// not run by hand (except with SKEIN_PLUGIN_DEBUG=1, see sdk.Serve).
package main

import (
	"github.com/skein-p2p/skein/plugins/store"
	"github.com/skein-p2p/skein/sdk"
)

func main() { sdk.ServeFunc(func() sdk.Plugin { return store.New() }) }
