// Command transport-pipe is an example third-party Skein transport plugin:
// it moves bytes over unix sockets on one machine (protocol "x-unix-pipe").
// It is written only against github.com/skein-p2p/skein/sdk, which is all a
// plugin author needs. Build it, put its path and sha256 in the node's
// config, and the node loads it without being rebuilt.
package main

import "github.com/skein-p2p/skein/sdk"

func main() { sdk.Serve(New()) }
