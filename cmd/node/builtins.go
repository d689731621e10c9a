package main

import (
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/plugins/ble"
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/plugins/mdns"
	"github.com/skein-p2p/skein/plugins/store"
	"github.com/skein-p2p/skein/plugins/store/memstore"
	"github.com/skein-p2p/skein/sdk"
)

// The plugins built into the skein binary: each runs linked in, or out of
// process by re-executing skein (`skein plugin serve <id>`).
func init() {
	pluginhost.Register(store.ID, func() sdk.Plugin { return store.New() })
	pluginhost.Register(memstore.ID, func() sdk.Plugin { return memstore.New() })
	// libp2p's identify tells every peer "skein/<version>".
	pluginhost.Register(ipfs.ID, func() sdk.Plugin { return ipfs.New(ipfs.WithAgentVersion("skein/" + currentVersion().Version)) })
	pluginhost.Register(mdns.ID, func() sdk.Plugin { return mdns.New() })
	pluginhost.Register(ble.ID, func() sdk.Plugin { return ble.New() })
}
