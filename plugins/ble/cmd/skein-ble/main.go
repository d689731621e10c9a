// Command skein-ble serves the Bluetooth LE transport plugin
// ("transport.ble") out of process over Skein's plugin wire protocol. The
// node starts it; it is not run by hand (except with SKEIN_PLUGIN_DEBUG=1,
// see sdk.Serve). The skein binary serves the same plugin itself
// (`skein plugin serve transport.ble`).
package main

import (
	"github.com/skein-p2p/skein/plugins/ble"
	"github.com/skein-p2p/skein/sdk"
)

func main() { sdk.ServeFunc(func() sdk.Plugin { return ble.New() }) }
