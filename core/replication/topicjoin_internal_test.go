package replication

import "testing"

// TestReachedByPubsub: a fresh peer is skipped after an announcement only
// when the network reported its join of that topic and it proved that
// topic on its current connection; a leave, a disconnect or this node
// leaving the topic undoes it.
func TestReachedByPubsub(t *testing.T) {
	const topic, other = "t", "u"
	tests := []struct {
		name  string
		setup func(r *Replicator)
		want  bool
	}{
		{"neither", func(*Replicator) {}, false},
		{"joined, not proven", func(r *Replicator) { r.reported.set("p", topic, true) }, false},
		{"proven, not joined", func(r *Replicator) { r.proofs.set("p", topic) }, false},
		{"both", func(r *Replicator) { r.reported.set("p", topic, true); r.proofs.set("p", topic) }, true},
		{"joined one topic, proved another", func(r *Replicator) {
			r.reported.set("p", other, true)
			r.proofs.set("p", topic)
		}, false},
		{"left the topic", func(r *Replicator) {
			r.reported.set("p", topic, true)
			r.proofs.set("p", topic)
			r.reported.set("p", topic, false)
		}, false},
		{"disconnected", func(r *Replicator) {
			r.reported.set("p", topic, true)
			r.proofs.set("p", topic)
			r.reported.forget("p")
			r.proofs.forget("p")
			r.proofs.set("p", topic) // proved again on the next connection
		}, false},
		{"topic removed here", func(r *Replicator) {
			r.reported.set("p", topic, true)
			r.proofs.set("p", topic)
			r.reported.forgetTopic(topic)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Replicator{proofs: newProofs()}
			tc.setup(r)
			if got := r.reachedByPubsub("p", topic); got != tc.want {
				t.Fatalf("reachedByPubsub = %v, want %v", got, tc.want)
			}
		})
	}
}
