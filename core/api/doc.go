// Package api serves the Skein client API (api/v1) over a node's
// messenger: on a unix socket in the data directory, mode 0600 so that only
// the node's user can connect, and optionally on TCP, where every call must
// carry "authorization: Bearer <token>" (compared in constant time; a TCP
// listener without a token is refused at start).
//
// Usage sketch (cmd/node does this in `skein run`):
//
//	srv, err := api.Listen(m, api.Config{Socket: api.SocketPath(dataDir)})
//	go srv.Serve()
//	defer srv.Stop(ctx)
//
// Clients use package client.
package api
