package messenger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/sdk"
)

// replicationNode starts a replication node named name with secret.
func replicationNode(t testing.TB, sn *simnet.Network, name string, secret [32]byte, maxGroups int) *testNode {
	t.Helper()
	return newTestNodeWith(t, sn, name, func(c *messenger.Config) {
		c.ReplicationNode = &messenger.ReplicationNodeConfig{Secret: secret, MaxGroups: maxGroups}
	})
}

// localHeads returns the local heads of a group's sync status, log by log
// ("meta: ...; messages: ...").
func localHeads(st messenger.SyncStatus) string {
	var out []string
	for _, l := range st.Logs {
		var s []string
		for _, c := range l.LocalHeads {
			s = append(s, c.String())
		}
		slices.Sort(s)
		out = append(out, l.Log+": "+strings.Join(s, ","))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// A member registers its group with a replication node; the node keeps
// the logs while every member is away, serves them to a member that comes
// back while the author is gone, and holds nothing that reads them.
func TestReplicationNodeServesAbsentMembers(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { sn.Close() })
	a, b := newTestNode(t, sn, "a"), newTestNode(t, sn, "b")
	secret := crypto.RandomKey()
	r := replicationNode(t, sn, "r", secret, 0)
	sn.ConnectAll()

	gi, err := a.m.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	ref := gi.ID.String()
	inv, err := a.m.Invite(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, waitLimit)
	if _, err := b.m.JoinGroup(jctx, inv.Token(), "team"); err != nil {
		t.Fatal(err)
	}
	cancel()
	// a shares its sending chain with b once it has applied b's join: a
	// message a sends before that is not for b (a new member reads from
	// the point its members learn of it), so wait for it.
	waitFor(t, "a knows b joined", func() bool {
		ms, err := a.m.Members(ref)
		return err == nil && len(ms) == 2
	})
	token, err := r.m.ReplicationNodeToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.m.RegisterWithReplicationNode(ctx, ref, token); err != nil {
		t.Fatal(err)
	}
	if err := a.m.RegisterWithReplicationNode(ctx, ref, token); err != nil {
		t.Fatalf("registering twice: %v", err)
	}

	// b is away; a writes, then leaves the network.
	sn.Partition([]string{"a", "r"}, []string{"b"})
	var secrets [][]byte
	for i := range 5 {
		body := fmt.Appendf(nil, "written while b was away %d %x", i, crypto.RandomKey())
		secrets = append(secrets, body)
		if _, err := a.m.Send(ctx, ref, body); err != nil {
			t.Fatal(err)
		}
	}
	aStatus := func() messenger.SyncStatus {
		st, err := a.m.SyncStatus(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return st[0]
	}
	// Both logs: the messages and the metadata (a's chain key for b).
	waitFor(t, "the replication node holds a's logs", func() bool {
		reps := r.m.Replicas()
		return len(reps) == 1 && localHeads(reps[0].Sync) == localHeads(aStatus())
	})
	sn.Partition([]string{"a"}, []string{"b", "r"})
	waitFor(t, "b caught up from the replication node alone", func() bool { return len(bodies(t, b, ref)) == 5 })
	if !slices.Equal(cids(t, b, ref), cids(t, a, ref)) {
		t.Fatal("b's order differs from a's")
	}

	reps := r.m.Replicas()
	if len(reps) != 1 || reps[0].ID != gi.ID || reps[0].Kind != group.KindMulti || reps[0].RegisteredBy != a.net.PeerID() {
		t.Fatalf("replicas = %+v", reps)
	}
	// Nothing the replication node stores opens the group: neither the
	// plaintexts nor the epoch secret appear in its store or keystore.
	var stored [][]byte
	for kv, err := range r.st.Query(ctx, sdk.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, kv.Key, kv.Value)
	}
	names, err := r.ks.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		v, err := r.ks.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, v)
	}
	for _, blob := range stored {
		for _, s := range append(secrets, inv.Secret[:]) {
			if bytes.Contains(blob, s) {
				t.Fatalf("the replication node stores a secret or a plaintext")
			}
		}
	}
	if _, err := r.m.Messages(ctx, ref, messenger.ListOptions{}); !errors.Is(err, messenger.ErrGroupNotFound) {
		t.Fatalf("the replication node lists messages: err = %v", err)
	}

	// Restarted, the replication node still replicates the group.
	if err := r.m.Close(); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	if reps := r.m.Replicas(); len(reps) != 1 || reps[0].ID != gi.ID {
		t.Fatalf("after restart, replicas = %+v", reps)
	}
	if _, err := b.m.Send(ctx, ref, []byte("after the node restarted")); err != nil {
		t.Fatal(err)
	}
	bStatus, err := b.m.SyncStatus(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted replication node has b's new message", func() bool {
		reps := r.m.Replicas()
		return len(reps) == 1 && localHeads(reps[0].Sync) == localHeads(bStatus[0])
	})
}

func TestRegistrationRefusals(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { sn.Close() })
	a := newTestNode(t, sn, "a")
	secret := crypto.RandomKey()
	r := replicationNode(t, sn, "r", secret, 1)
	plain := newTestNode(t, sn, "plain")
	sn.ConnectAll()
	for _, name := range []string{"one", "two"} {
		if _, err := a.m.CreateGroup(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	good, err := r.m.ReplicationNodeToken()
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := (&group.ReplicationNodeToken{Peer: r.net.PeerID(), Addrs: r.net.Addrs(), Secret: crypto.RandomKey()}).Token()
	notServing := (&group.ReplicationNodeToken{Peer: plain.net.PeerID(), Addrs: plain.net.Addrs(), Secret: secret}).Token()
	if _, err := plain.m.ReplicationNodeToken(); !errors.Is(err, messenger.ErrNotReplicationNode) {
		t.Fatalf("a plain node gave a replication-node token: %v", err)
	}
	for _, tc := range []struct {
		name, group, token string
		want               string // in the error; "" for success
		is                 error
	}{
		{"malformed token", "one", "skein1-abc", "", messenger.ErrInvalidArgument},
		{"an invitation instead", "one", "", "this is an invitation", messenger.ErrInvalidArgument},
		{"wrong secret", "one", wrongSecret, "", messenger.ErrNotAuthorized},
		{"node that does not serve registrations", "one", notServing, "register", nil},
		{"unknown group", "nope", good, "", messenger.ErrGroupNotFound},
		{"first group accepted", "one", good, "", nil},
		{"second group refused: full", "two", good, "", messenger.ErrTooManyGroups},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token
			if tc.name == "an invitation instead" {
				inv, err := a.m.Invite(ctx, "one")
				if err != nil {
					t.Fatal(err)
				}
				token = inv.Token()
			}
			err := a.m.RegisterWithReplicationNode(ctx, tc.group, token)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if tc.is == nil && tc.want == "" && err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := len(r.m.Replicas()); n != 1 {
		t.Fatalf("the replication node holds %d groups, want 1", n)
	}
	// Removing a registration frees the slot, and survives a restart.
	one, err := a.m.Resolve("one")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"", "zz", one.ID.String()[:10]} {
		_, err := r.m.RemoveReplica(ctx, ref)
		if ref == "" || ref == "zz" {
			if !errors.Is(err, messenger.ErrGroupNotFound) {
				t.Fatalf("remove %q: err = %v, want ErrGroupNotFound", ref, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := plain.m.RemoveReplica(ctx, "ab"); !errors.Is(err, messenger.ErrNotReplicationNode) {
		t.Fatalf("remove on a plain node: %v", err)
	}
	if err := a.m.RegisterWithReplicationNode(ctx, "two", good); err != nil {
		t.Fatalf("registering after a removal freed the slot: %v", err)
	}
	if err := r.m.Close(); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	two, err := a.m.Resolve("two")
	if err != nil {
		t.Fatal(err)
	}
	if reps := r.m.Replicas(); len(reps) != 1 || reps[0].ID != two.ID {
		t.Fatalf("after removal and restart, replicas = %+v", reps)
	}
}

// A peer that keeps presenting wrong registration secrets is cut off; the
// members it does not concern are unaffected.
func TestGuessingTheRegistrationSecretIsCutOff(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { sn.Close() })
	secret := crypto.RandomKey()
	r := replicationNode(t, sn, "r", secret, 0)
	guesser, member := newTestNode(t, sn, "guesser"), newTestNode(t, sn, "member")
	sn.ConnectAll()
	for _, n := range []*testNode{guesser, member} {
		if _, err := n.m.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		guess := (&group.ReplicationNodeToken{Peer: r.net.PeerID(), Addrs: r.net.Addrs(), Secret: crypto.RandomKey()}).Token()
		err := guesser.m.RegisterWithReplicationNode(ctx, "g", guess)
		if !errors.Is(err, messenger.ErrNotAuthorized) {
			t.Fatalf("guess %d: err = %v, want ErrNotAuthorized", i, err)
		}
		// The last refusal says why the peer is cut off (not a stream
		// reset): it is cut off once that answer is out.
		if cut := strings.Contains(err.Error(), "cut this node off for 10m0s"); cut != (i == 4) {
			t.Fatalf("guess %d: err = %v; the cut-off said = %v", i, err, cut)
		}
		if i < 4 && r.net.Blocked(guesser.net.PeerID()) {
			t.Fatalf("blocked after %d wrong secrets", i+1)
		}
	}
	waitFor(t, "the guesser is cut off", func() bool { return r.net.Blocked(guesser.net.PeerID()) })
	good, err := r.m.ReplicationNodeToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := member.m.RegisterWithReplicationNode(ctx, "g", good); err != nil {
		t.Fatalf("an honest member after the guesser was cut off: %v", err)
	}
}

// Every member that registers a group is recorded (the first one first),
// also after a restart of the replication node.
func TestEveryRegistrantRecorded(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	t.Cleanup(func() { sn.Close() })
	r := replicationNode(t, sn, "r", crypto.RandomKey(), 0)
	a, b := newTestNode(t, sn, "a"), newTestNode(t, sn, "b")
	sn.ConnectAll()
	if _, err := a.m.CreateGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	inv, err := a.m.Invite(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.JoinGroup(ctx, inv.Token(), "g"); err != nil {
		t.Fatal(err)
	}
	token, err := r.m.ReplicationNodeToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{a, b, a} {
		if err := n.m.RegisterWithReplicationNode(ctx, "g", token); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		reps := r.m.Replicas()
		if len(reps) != 1 {
			t.Fatalf("%s: %d replicas", when, len(reps))
		}
		var peers []string
		for _, g := range reps[0].Registrations {
			peers = append(peers, g.Peer)
		}
		if strings.Join(peers, ",") != "a,b" || reps[0].RegisteredBy != "a" {
			t.Fatalf("%s: registrations %v (first %s), want a then b", when, peers, reps[0].RegisteredBy)
		}
	}
	check("running")
	if err := r.m.Close(); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	check("after a restart")
}
