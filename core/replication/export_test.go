package replication

import "time"

// SetReexchangeAfter replaces the re-exchange times after a connect for a
// test; the returned function restores them.
func SetReexchangeAfter(ds []time.Duration) (restore func()) {
	old := reexchangeAfter
	reexchangeAfter = ds
	return func() { reexchangeAfter = old }
}

// TopicJoinExchanges returns how many head exchanges r started because a
// proven peer joined a topic.
func TopicJoinExchanges(r *Replicator) int64 { return r.topicJoins.Load() }
