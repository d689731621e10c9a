package replication

// WithPeerSeen calls f the first time a peer tells this replicator its
// heads of a log (an announcement, a digest or a head exchange): the peer
// replicates that log, so it shares the group (a node remembers such
// peers to find them again after a restart). It is called again for a
// peer forgotten meanwhile (cut off). f must not block: it runs under the
// log's lock.
func WithPeerSeen(f func(peerID string, log LogID)) Option {
	return func(o *options) error { o.peerSeenHook = f; return nil }
}

func (r *Replicator) peerSeen(peer string, log LogID) {
	if f := r.opts.peerSeenHook; f != nil && peer != "" {
		f(peer, log)
	}
}
