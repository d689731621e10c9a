// Command skein-ipfs serves the network.ipfs plugin out of process. The
// skein binary serves the same plugin itself (`skein plugin serve
// network.ipfs`); this standalone binary is for deployments that pin plugin
// binaries by checksum.
package main

import (
	"github.com/skein-p2p/skein/plugins/ipfs"
	"github.com/skein-p2p/skein/sdk"
)

func main() { sdk.ServeFunc(func() sdk.Plugin { return ipfs.New() }) }
