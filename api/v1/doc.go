// Package apiv1 holds the generated protobuf and gRPC code of the Skein
// client API, version 1 (api.proto): the services a running node serves on
// its unix socket (and optionally TCP) to the CLI and applications.
//
// Go clients normally use package github.com/skein-p2p/skein/client, which
// dials the socket and returns these service clients.
package apiv1

//go:generate ../../internal/protogen/protogen.sh api.proto
