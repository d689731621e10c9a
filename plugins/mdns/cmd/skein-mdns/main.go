// Command skein-mdns serves the mDNS discovery plugin ("discovery.mdns")
// out of process over Skein's plugin wire protocol. The node starts it; it
// is not run by hand (except with SKEIN_PLUGIN_DEBUG=1, see sdk.Serve).
// The skein binary serves the same plugin itself
// (`skein plugin serve discovery.mdns`).
package main

import (
	"github.com/skein-p2p/skein/plugins/mdns"
	"github.com/skein-p2p/skein/sdk"
)

func main() { sdk.ServeFunc(func() sdk.Plugin { return mdns.New() }) }
