package replication

import "time"

// SetReexchangeAfter replaces the re-exchange times after a connect for a
// test; the returned function restores them.
func SetReexchangeAfter(ds []time.Duration) (restore func()) {
	old := reexchangeAfter
	reexchangeAfter = ds
	return func() { reexchangeAfter = old }
}
