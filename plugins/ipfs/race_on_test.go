//go:build race

package ipfs

// raceEnabled: the test binary runs under the race detector, which
// multiplies the memory a process touches.
const raceEnabled = true
