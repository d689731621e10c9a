// Package wirev1 holds the generated protobuf and gRPC code of the Skein
// plugin wire protocol, version 1 (skein.proto). It is internal: plugin
// authors and hosts use package sdk, which converts to and from these types.
package wirev1

//go:generate ../../../../internal/protogen/protogen.sh skein.proto
