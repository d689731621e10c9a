package group

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/log"
)

// forgeEnvelope seals body as r's device would in epoch e at index idx,
// with the chain key ck at index start, bypassing r's group.
func forgeEnvelope(t testing.TB, g *Group, sender crypto.PublicKey, e EpochID, idx uint64, body []byte, mk [32]byte) []byte {
	t.Helper()
	return forgeEnvelopeVersion(t, g, envelopeVersion, sender, e, idx, body, mk)
}

// forgeEnvelopeVersion is forgeEnvelope for an envelope of version v (3:
// the header sealed with a nonce under the epoch's header key; 4: sealed
// once under headerOnceKey).
func forgeEnvelopeVersion(t testing.TB, g *Group, v byte, sender crypto.PublicKey, e EpochID, idx uint64, body []byte, mk [32]byte) []byte {
	t.Helper()
	h := Header{Sender: sender, Index: idx, SentAt: time.Now().UnixMilli()}
	hk := headerKey(g.id, g.secrets[e])
	se, err := sealEpoch(g.keys, g.id, sender, e)
	if err != nil {
		t.Fatal(err)
	}
	var sh []byte
	if v == envelopeVersion3 {
		sh, err = crypto.Seal(&hk, h.marshal(v), headerAD(g.id, e, sender))
	} else {
		once := headerOnceKey(&hk, &se)
		sh, err = crypto.SealOnce(&once, h.marshal(v), headerAD(g.id, e, sender))
	}
	if err != nil {
		t.Fatal(err)
	}
	sb, err := crypto.SealOnce(&mk, body, bodyAD(g.id, e, sender, idx))
	if err != nil {
		t.Fatal(err)
	}
	return mustMarshal(t, &Envelope{Version: v, SealedEpoch: se, Header: sh, Body: sb})
}

func TestAttackWriterNotMember(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	mallory := newIdentity(t)

	t.Run("message", func(t *testing.T) {
		good := send(t, b, "good message")
		// Alice has bob's chain (shared in the metadata log before he sent).
		if err := a.g.Receive(ctxT(t), "bob", Heads{Meta: b.g.Heads().Meta}); err != nil {
			t.Fatal(err)
		}
		w := newRawWriter(t, n, "mallory", MessagesLogID(a.g.ID()), mallory.Device)
		w.follow(t, b.g.Heads().Messages)
		// Mallory knows the epoch secret (say, from a leaked invitation) but
		// was never added: her well-formed message must still be refused.
		bad := w.append(t, forgeEnvelope(t, b.g, mallory.DeviceKey(), GenesisEpoch, 0, []byte("spam"), crypto.RandomKey()))
		err := a.g.Receive(ctxT(t), "mallory", Heads{Messages: w.l.Heads()})
		re := expectRejected(t, err, ErrNotMember)
		if !re.Rejections[0].CID.Equals(bad.CID()) || re.Rejections[0].From != "mallory" {
			t.Fatalf("rejection %v, want entry %s from mallory", re.Rejections[0], bad.CID())
		}
		if got := bodies(t, a.g); !slices.Contains(got, "good message") || slices.Contains(got, "spam") {
			t.Fatalf("alice has %q", got)
		}
		_ = good
	})
	t.Run("metadata", func(t *testing.T) {
		w := newRawWriter(t, n, "mallory", MetaLogID(a.g.ID()), mallory.Device)
		w.follow(t, a.g.Heads().Meta)
		ik, _ := crypto.GenerateSigningKey()
		w.appendMeta(t, a.g, &MetaPayload{Type: MetaInvitationCreated, Epoch: GenesisEpoch, InviteKey: ik.Public()})
		err := a.g.Receive(ctxT(t), "mallory", Heads{Meta: w.l.Heads()})
		expectRejected(t, err, ErrNotMember)
		if a.g.state.invites[ik.Public()] != nil {
			t.Fatal("mallory's invitation entered the state")
		}
	})
}

func TestAttackRemovedMemberWrites(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob", "carol")
	a, b, c := rs[0], rs[1], rs[2]
	ctx := ctxT(t)

	before := send(t, c, "carol before removal")
	syncAll(t, a, b, c)
	old := GenesisEpoch
	if err := a.g.RemoveMember(ctx, c.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	if a.g.Epoch() == old {
		t.Fatal("removal did not start a new epoch")
	}
	pull(t, b, a)

	// Carol, removed, keeps writing in the old epoch with her chain, as if
	// she had not seen the removal (her own group would refuse).
	chain := c.g.sendChains[old]
	idx, mk := chain.Next()
	w := newRawWriter(t, n, "carol", MessagesLogID(a.g.ID()), c.id.Device)
	w.follow(t, a.g.Heads().Messages)
	w.append(t, forgeEnvelope(t, c.g, c.id.DeviceKey(), old, idx, []byte("carol after removal"), mk))

	err := a.g.Receive(ctx, "carol", Heads{Messages: w.l.Heads()})
	expectRejected(t, err, ErrRemoved)
	got := bodies(t, a.g)
	if !slices.Contains(got, "carol before removal") || slices.Contains(got, "carol after removal") {
		t.Fatalf("alice has %q", got)
	}
	_ = before

	// Carol's entry is in alice's message log (admission cannot tell it
	// from one written concurrently with the removal), so bob gets it too
	// and refuses to deliver it for the same reason.
	err = b.g.Receive(ctx, "alice", a.g.Heads())
	expectRejected(t, err, ErrRemoved)
	if got := bodies(t, b.g); slices.Contains(got, "carol after removal") {
		t.Fatalf("bob has %q", got)
	}

	// What alice and bob send now, carol cannot read.
	send(t, a, "secret after removal")
	pull(t, b, a)
	if got := bodies(t, b.g); !slices.Contains(got, "secret after removal") {
		t.Fatalf("bob cannot read the new epoch: %q", got)
	}
	if err := c.g.Receive(ctx, "alice", a.g.Heads()); err != nil && !errors.Is(err, ErrRemoved) {
		t.Logf("carol receives: %v", err)
	}
	if got := bodies(t, c.g); slices.Contains(got, "secret after removal") {
		t.Fatal("removed carol read a message of the new epoch")
	}
	if c.g.secrets[a.g.Epoch()] != nil {
		t.Fatal("removed carol holds the new epoch secret")
	}
	if _, err := c.g.Send(ctx, []byte("x")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("carol sends after removal: %v, want ErrRemoved", err)
	}
	for _, m := range a.g.Members() {
		if m.Account.Equal(c.id.AccountKey()) {
			t.Fatal("carol still listed as a member")
		}
	}

	// A replica that joins later still accepts carol's entries from before
	// the removal (they are under the cutoff), and only those.
	inv, err := a.g.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dave, err := Join(ctx, newIdentity(t), inv, n.storage(), "alice", a.g.Heads())
	if err != nil {
		t.Fatal(err)
	}
	defer dave.Close()
	if dave.msgs.Len() != a.g.msgs.Len() || dave.meta.Len() < a.g.meta.Len() {
		t.Fatalf("late replica has %d messages, %d metadata entries; alice %d, %d",
			dave.msgs.Len(), dave.meta.Len(), a.g.msgs.Len(), a.g.meta.Len())
	}
}

func TestAttackReplayedMessage(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	m := send(t, b, "pay alice 10")
	pull(t, a, b)
	e, err := b.g.msgs.Get(ctxT(t), m.CID)
	if err != nil {
		t.Fatal(err)
	}
	// Bob's device re-appends the identical envelope as a new entry.
	w := newRawWriter(t, n, "bob", MessagesLogID(a.g.ID()), b.id.Device)
	w.follow(t, b.g.Heads().Messages)
	replay := w.append(t, e.Payload)
	err = a.g.Receive(ctxT(t), "bob", Heads{Messages: w.l.Heads()})
	re := expectRejected(t, err, ErrReplay)
	if !re.Rejections[0].CID.Equals(replay.CID()) {
		t.Fatalf("rejected %s, want the replay %s", re.Rejections[0].CID, replay.CID())
	}
	if got := bodies(t, a.g); len(got) != 1 {
		t.Fatalf("alice has %q, want the message once", got)
	}
}

func TestAttackTampered(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob", "carol")
	a, b, c := rs[0], rs[1], rs[2]
	// Bob's and carol's first messages share their chains; the forged ones
	// continue bob's, and alice has carol's for the good ones.
	send(t, b, "bob's first")
	send(t, c, "carol's first")
	syncAll(t, a, b, c)
	cases := []struct {
		name   string
		mutate func(env *Envelope, carolsEnv []byte) []byte
		want   error
	}{
		{"header bit flipped", func(env *Envelope, _ []byte) []byte {
			env.Header[len(env.Header)-1] ^= 1
			return mustMarshal(t, env)
		}, ErrTampered},
		{"body bit flipped", func(env *Envelope, _ []byte) []byte {
			env.Body[30] ^= 1
			return mustMarshal(t, env)
		}, ErrTampered},
		{"header and body of another sender", func(_ *Envelope, carols []byte) []byte {
			return carols // its epoch is sealed for carol's entries
		}, ErrMalformedPayload},
		{"header of another sender", func(env *Envelope, carols []byte) []byte {
			ce, err := DecodeEnvelope(carols)
			if err != nil {
				t.Fatal(err)
			}
			env.Header = ce.Header
			return mustMarshal(t, env)
		}, ErrTampered},
		{"epoch changed", func(env *Envelope, _ []byte) []byte {
			se, err := sealEpoch(b.g.keys, b.g.id, b.id.DeviceKey(), EpochID{1})
			if err != nil {
				t.Fatal(err)
			}
			env.SealedEpoch = se
			return mustMarshal(t, env)
		}, ErrUnknownEpoch},
		{"same epoch sealed again", func(env *Envelope, _ []byte) []byte {
			// The epoch opens, and is the right one, but the header's key
			// was derived from the sealed epoch it was written with.
			se, err := sealEpoch(b.g.keys, b.g.id, b.id.DeviceKey(), GenesisEpoch)
			if err != nil {
				t.Fatal(err)
			}
			env.SealedEpoch = se
			return mustMarshal(t, env)
		}, ErrTampered},
		{"version 4 envelope relabelled version 3", func(env *Envelope, _ []byte) []byte {
			env.Version = envelopeVersion3
			return mustMarshal(t, env)
		}, ErrTampered},
		{"sealed epoch bit flipped", func(env *Envelope, _ []byte) []byte {
			env.SealedEpoch[30] ^= 1
			return mustMarshal(t, env)
		}, ErrMalformedPayload},
		{"epoch sealed for another writer", func(env *Envelope, _ []byte) []byte {
			se, err := sealEpoch(b.g.keys, b.g.id, c.id.DeviceKey(), GenesisEpoch)
			if err != nil {
				t.Fatal(err)
			}
			env.SealedEpoch = se
			return mustMarshal(t, env)
		}, ErrMalformedPayload},
		{"truncated envelope", func(env *Envelope, _ []byte) []byte {
			b := mustMarshal(t, env)
			return b[:len(b)-3]
		}, ErrMalformedPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			cm := send(t, c, "carol: "+tc.name)
			ce, _ := c.g.msgs.Get(ctx, cm.CID)
			// Bob seals a real message, then tampers with it before appending.
			idx, mk := b.g.sendChains[GenesisEpoch].Next()
			raw := forgeEnvelope(t, b.g, b.id.DeviceKey(), GenesisEpoch, idx, []byte("bob: "+tc.name), mk)
			env, err := DecodeEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			w := newRawWriter(t, n, "bob", MessagesLogID(a.g.ID()), b.id.Device)
			w.follow(t, c.g.Heads().Messages)
			w.append(t, tc.mutate(env, ce.Payload))
			err = a.g.Receive(ctx, "bob", Heads{Messages: w.l.Heads()})
			expectRejected(t, err, tc.want)
			got := bodies(t, a.g)
			if !slices.Contains(got, "carol: "+tc.name) {
				t.Fatalf("the good message was lost: %q", got)
			}
			if slices.Contains(got, "bob: "+tc.name) {
				t.Fatalf("tampered message delivered: %q", got)
			}
		})
	}
}

func TestAttackDeviceNotCertified(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice")
	a := rs[0]
	ctx := ctxT(t)
	other, _ := crypto.GenerateSigningKey()
	victim := newIdentity(t)
	cases := []struct {
		name string
		cert func(dev *crypto.DeviceKey) *crypto.DeviceCertificate
		want error
	}{
		{"certificate claims an account that did not sign it", func(dev *crypto.DeviceKey) *crypto.DeviceCertificate {
			c, _ := crypto.IssueDeviceCertificate(other, dev.Public(), time.Now())
			c.Account = victim.AccountKey()
			return c
		}, ErrNotCertified},
		{"certificate of another device", func(*crypto.DeviceKey) *crypto.DeviceCertificate {
			return victim.Cert
		}, ErrNotCertified},
		{"signature corrupted", func(dev *crypto.DeviceKey) *crypto.DeviceCertificate {
			c, _ := crypto.IssueDeviceCertificate(other, dev.Public(), time.Now())
			c.Signature[5] ^= 1
			return c
		}, ErrNotCertified},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := a.g.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ik, _ := crypto.NewSigningKeyFromSeed(inv.InviteSeed[:])
			dev, _ := crypto.GenerateDeviceKey()
			cert := tc.cert(dev)
			sig, _ := ik.Sign(domainDeviceAdded, deviceAddedMessage(a.g.ID(), inv.Epoch, AuthInvitation, ik.Public(), cert))
			w := newRawWriter(t, n, "eve", MetaLogID(a.g.ID()), dev)
			w.follow(t, a.g.Heads().Meta)
			w.appendMeta(t, a.g, &MetaPayload{Type: MetaDeviceAdded, Epoch: inv.Epoch, Cert: cert,
				AuthType: AuthInvitation, InviteKey: ik.Public(), AuthSig: sig})
			err = a.g.Receive(ctx, "eve", Heads{Meta: w.l.Heads()})
			expectRejected(t, err, tc.want)
			if len(a.g.Members()) != 1 {
				t.Fatalf("members: %d, want 1", len(a.g.Members()))
			}
		})
	}
}

func TestAttackInvitationForAnotherGroup(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	g1 := n.create(t, "alice")[0]
	g2 := n.create(t, "dave")[0]
	inv2, err := g2.g.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob := newIdentity(t)

	t.Run("join with another group's heads", func(t *testing.T) {
		_, err := Join(ctx, bob, inv2, n.storage(), "alice", g1.g.Heads())
		if !errors.Is(err, ErrWrongGroup) {
			t.Fatalf("got %v, want ErrWrongGroup", err)
		}
	})
	t.Run("check invitation", func(t *testing.T) {
		if err := g1.g.CheckInvitation(inv2); !errors.Is(err, ErrWrongGroup) {
			t.Fatalf("got %v, want ErrWrongGroup", err)
		}
	})
	t.Run("device-added into another group with this invitation key", func(t *testing.T) {
		ik, _ := crypto.NewSigningKeyFromSeed(inv2.InviteSeed[:])
		sig, _ := ik.Sign(domainDeviceAdded, deviceAddedMessage(g1.g.ID(), GenesisEpoch, AuthInvitation, ik.Public(), bob.Cert))
		w := newRawWriter(t, n, "bob", MetaLogID(g1.g.ID()), bob.Device)
		w.follow(t, g1.g.Heads().Meta)
		w.appendMeta(t, g1.g, &MetaPayload{Type: MetaDeviceAdded, Epoch: GenesisEpoch, Cert: bob.Cert,
			AuthType: AuthInvitation, InviteKey: ik.Public(), AuthSig: sig})
		err := g1.g.Receive(ctx, "bob", Heads{Meta: w.l.Heads()})
		expectRejected(t, err, ErrInvitationUnknown)
		if len(g1.g.Members()) != 1 {
			t.Fatal("bob became a member with another group's invitation")
		}
	})
	t.Run("tampered token", func(t *testing.T) {
		tok := []byte(inv2.Token())
		tok[20] = map[bool]byte{true: 'b', false: 'a'}[tok[20] == 'a']
		if _, err := ParseInvitation(string(tok)); !errors.Is(err, ErrTokenChecksum) {
			t.Fatalf("got %v, want ErrTokenChecksum", err)
		}
	})
	t.Run("still joins its own group", func(t *testing.T) {
		g, err := Join(ctx, bob, inv2, n.storage(), "dave", g2.g.Heads())
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if !g.ID().Equal(g2.g.ID()) {
			t.Fatal("joined the wrong group")
		}
	})
}

func TestForwardSecrecyGroup(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	m := send(t, a, "old secret")
	pull(t, b, a)
	if got := bodies(t, b.g); !slices.Equal(got, []string{"old secret"}) {
		t.Fatalf("bob has %q", got)
	}
	e, _ := b.g.msgs.Get(ctxT(t), m.CID)
	env, _ := DecodeEnvelope(e.Payload)
	// Bob's whole current state (a thief's copy of his device) holds no key
	// that opens the message he already read.
	rc := b.g.recvChains[chainRef{sender: a.id.DeviceKey(), epoch: GenesisEpoch}]
	state, _ := rc.MarshalBinary()
	var stolen crypto.ReceivingChain
	if err := stolen.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if _, err := stolen.KeyFor(m.Index); err == nil {
		t.Fatal("the ratchet state still yields the key of a read message")
	}
	// Nor does the sender's current chain.
	_, ck := a.g.sendChains[GenesisEpoch].Share()
	k0, _ := crypto.NewReceivingChain(ck, m.Index+1)
	if _, err := k0.KeyFor(m.Index); !errors.Is(err, crypto.ErrBeforeChainStart) {
		t.Fatalf("sender's current chain: %v, want ErrBeforeChainStart", err)
	}
	mk, _ := k0.KeyFor(m.Index + 1)
	if _, err := crypto.OpenOnce(&mk, env.Body, bodyAD(a.g.ID(), GenesisEpoch, a.id.DeviceKey(), m.Index)); err == nil {
		t.Fatal("a later message key opened an earlier message")
	}
}

func TestLeaveRekeys(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	ctx := ctxT(t)
	if err := b.g.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	pull(t, a, b)
	if len(a.g.Members()) != 1 {
		t.Fatalf("members after leave: %d", len(a.g.Members()))
	}
	before := a.g.Epoch()
	send(t, a, "after bob left")
	if a.g.Epoch() == before {
		t.Fatal("no rekey after a member left")
	}
	if err := b.g.Receive(ctx, "alice", a.g.Heads()); err != nil {
		t.Logf("bob receives: %v", err)
	}
	if got := bodies(t, b.g); slices.Contains(got, "after bob left") {
		t.Fatal("bob read a message sent after he left")
	}
	if _, err := b.g.Send(ctx, []byte("x")); !errors.Is(err, ErrRemoved) {
		t.Fatalf("send after leave: %v", err)
	}
}

var _ = log.ErrNotAllowed

// TestConcurrentRemovals: two members remove two others at the same time,
// each sharing its new secret with the member the other removes. The next
// sender sees the latest epoch is tainted and rekeys, so neither removed
// member reads what follows.
func TestConcurrentRemovals(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob", "carol", "dave")
	a, b, c, d := rs[0], rs[1], rs[2], rs[3]
	ctx := ctxT(t)
	if err := a.g.RemoveMember(ctx, c.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	if err := b.g.RemoveMember(ctx, d.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	pull(t, a, b)
	pull(t, b, a)
	if a.g.Epoch() != b.g.Epoch() {
		t.Fatal("alice and bob disagree on the latest epoch")
	}
	if !a.g.state.tainted(a.g.Epoch()) {
		t.Fatal("the latest epoch should be tainted: its secret reached a removed member")
	}
	send(t, a, "after both removals")
	pull(t, b, a)
	if got := bodies(t, b.g); !slices.Contains(got, "after both removals") {
		t.Fatalf("bob cannot read: %q", got)
	}
	for _, r := range []*replica{c, d} {
		_ = r.g.Receive(ctx, "alice", a.g.Heads())
		if got := bodies(t, r.g); slices.Contains(got, "after both removals") {
			t.Fatalf("removed %s read the message", r.name)
		}
	}
	if m := a.g.Members(); len(m) != 2 {
		t.Fatalf("members: %d, want 2", len(m))
	}
}

func TestInvitationRevokedByRekey(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	ctx := ctxT(t)
	inv, err := a.g.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.g.RemoveMember(ctx, b.id.AccountKey()); err != nil {
		t.Fatal(err)
	}
	eve := newIdentity(t)
	if _, err := Join(ctx, eve, inv, n.storage(), "alice", a.g.Heads()); !errors.Is(err, ErrInvitationUnknown) {
		t.Fatalf("join with a revoked invitation: %v, want ErrInvitationUnknown", err)
	}
	// Forcing the device-added anyway does not make eve a member.
	ik, _ := crypto.NewSigningKeyFromSeed(inv.InviteSeed[:])
	sig, _ := ik.Sign(domainDeviceAdded, deviceAddedMessage(a.g.ID(), inv.Epoch, AuthInvitation, ik.Public(), eve.Cert))
	w := newRawWriter(t, n, "eve", MetaLogID(a.g.ID()), eve.Device)
	w.follow(t, a.g.Heads().Meta)
	w.appendMeta(t, a.g, &MetaPayload{Type: MetaDeviceAdded, Epoch: inv.Epoch, Cert: eve.Cert,
		AuthType: AuthInvitation, InviteKey: ik.Public(), AuthSig: sig})
	err = a.g.Receive(ctx, "eve", Heads{Meta: w.l.Heads()})
	expectRejected(t, err, ErrInvitationUnknown)
	for _, m := range a.g.Members() {
		if m.Account.Equal(eve.AccountKey()) {
			t.Fatal("eve became a member with a revoked invitation")
		}
	}
}

func TestInvitationSingleAccount(t *testing.T) {
	n := newNet()
	a := n.create(t, "alice")[0]
	ctx := ctxT(t)
	inv, err := a.g.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob := newIdentity(t)
	gb, err := Join(ctx, bob, inv, n.storage(), "alice", a.g.Heads())
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	// Bob's second device may use it too; another account may not.
	bob2, _ := NewDevice(bob.Account, bob.ContactKey)
	g2, err := Join(ctx, bob2, inv, n.storage(), "bob", gb.Heads())
	if err != nil {
		t.Fatalf("bob's second device: %v", err)
	}
	defer g2.Close()
	_, err = Join(ctx, newIdentity(t), inv, n.storage(), "bob", g2.Heads())
	if !errors.Is(err, ErrBadAuthorization) {
		t.Fatalf("a second account used the invitation: %v, want ErrBadAuthorization", err)
	}
}

// A message whose epoch or writer the replica's membership log does not
// hold yet is refused as "not yet allowed" (a replicator retries it once
// the metadata arrives) and admitted after the metadata came.
func TestMessageBeforeItsMembershipIsNotYetAllowed(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a := rs[0]
	m := send(t, a, "sent before the replica knows the group")
	rep := replicate(t, a.g, n.storage())
	err := rep.Receive(ctxT(t), "alice", Heads{Messages: a.g.Heads().Messages})
	re := expectRejected(t, err, log.ErrNotYetAllowed)
	if !errors.Is(re.Rejections[0].Err, log.ErrNotAllowed) {
		t.Fatalf("rejection %v does not wrap log.ErrNotAllowed", re.Rejections[0].Err)
	}
	if err := rep.Receive(ctxT(t), "alice", Heads{Meta: a.g.Heads().Meta}); err != nil {
		t.Fatal(err)
	}
	if err := rep.Receive(ctxT(t), "alice", Heads{Messages: a.g.Heads().Messages}); err != nil {
		t.Fatalf("after the metadata arrived: %v", err)
	}
	if ok, err := rep.msgs.Has(ctxT(t), m.CID); err != nil || !ok {
		t.Fatalf("the replica does not hold the message (%v)", err)
	}
}
