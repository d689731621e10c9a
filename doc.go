// Package skein is the root of the Skein module: a serverless,
// end-to-end-encrypted group messaging node in which every peer is both
// client and server.
//
// The root package holds no code of its own; its tests enforce the
// repository's conventions (see conventions_test.go). Start from:
//
//   - core/crypto, core/log, core/group: the library (no networking)
//   - sdk: what plugin authors import
//   - core/pluginhost, core/config, core/node: the node
//   - cmd/node: the skein binary
package skein
