package replication_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/replication"
	"github.com/skein-p2p/skein/plugins/simnet"
)

// Announcements sealed with one suite open under that suite only: a
// replica of another suite sees a stranger's bytes (ErrNotSealedForTopic).
func TestTopicKeysSuite(t *testing.T) {
	def := testKeys(t)
	aes := def.WithSuite(crypto.AESGCMSuite{})
	h, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	a := &replication.Announcement{Log: replication.LogIDFor(def.Topic, "messages"), Heads: []cid.Cid{cid.NewCidV1(cid.DagCBOR, h)}}
	for _, tc := range []struct {
		name       string
		seal, open *replication.TopicKeys
		wantErr    error
	}{
		{"default", def, def, nil},
		{"aes-gcm", aes, aes, nil},
		{"aes-gcm opened as default", aes, def, replication.ErrNotSealedForTopic},
		{"default opened as aes-gcm", def, aes, replication.ErrNotSealedForTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.seal.Seal(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := replication.ValidateAnnouncement(b); err != nil {
				t.Fatalf("a relay refuses the frame: %v", err)
			}
			got, err := tc.open.Open(b)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("open: %v, want %v", err, tc.wantErr)
			}
			if err == nil && !got.Heads[0].Equals(a.Heads[0]) {
				t.Fatal("opened another announcement")
			}
		})
	}
}

// Replicas of the AES-GCM suite replicate with each other.
func TestReplicationWithSuite(t *testing.T) {
	_, peers := simCluster(t, 3, nil, fastOpts(replication.WithSuite(crypto.AESGCMSuite{}))...)
	appendN(t, peers[0], 5, "aes")
	waitFor(t, 20*time.Second, lens(peers), func() bool { return converged(peers, 5) })
}

func TestIntervalOptionsRefuse(t *testing.T) {
	sn := simnet.New()
	t.Cleanup(func() { _ = sn.Close() })
	nd, err := sn.AddNode("x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  replication.Option
		ok   bool
	}{
		{"no re-exchange", replication.WithReexchange(), true},
		{"re-exchange times", replication.WithReexchange(10*time.Millisecond, time.Second), true},
		{"re-exchange not increasing", replication.WithReexchange(time.Second, time.Second), false},
		{"re-exchange zero", replication.WithReexchange(0), false},
		{"bulk retry", replication.WithBulkRetryAfter(time.Second), true},
		{"bulk retry zero", replication.WithBulkRetryAfter(0), false},
		{"suite", replication.WithSuite(crypto.AESGCMSuite{}), true},
		{"nil suite", replication.WithSuite(nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replication.New(nd, tc.opt)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
