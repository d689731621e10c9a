// Package stranger holds Skein's end-to-end test of what a stranger
// learns: real `skein run` nodes on loopback, members of one group, and a
// libp2p host of the test's own that connects to them and tries, as an
// attacker would, to learn the group's membership, heads, entries and
// announcements. The package has no code outside its tests; they build
// the skein binary (go build ./cmd/node) once.
package stranger
