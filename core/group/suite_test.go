package group

import (
	"errors"
	"slices"
	"testing"

	"github.com/skein-p2p/skein/core/crypto"
)

// A group made with another suite works end to end (create, invite, join,
// send, rekey by removal, save and reopen), carries its suite in the
// invitation and the saved keys, and seals with that suite only.
func TestGroupWithSuite(t *testing.T) {
	for _, suite := range []crypto.Suite{crypto.DefaultSuite(), crypto.AESGCMSuite{}} {
		t.Run(suite.Name(), func(t *testing.T) {
			n := newNet()
			ctx := ctxT(t)
			alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
			stA, stB := n.storage(), n.storage()
			ga, err := Create(ctx, alice, stA, WithSuite(suite))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ga.Close() })
			inv, err := ga.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.SuiteName(); got != suite.Name() {
				t.Fatalf("invitation names suite %q, want %q", got, suite.Name())
			}
			parsed, err := ParseInvitation(inv.Token())
			if err != nil {
				t.Fatal(err)
			}
			if parsed.SuiteName() != suite.Name() {
				t.Fatalf("token carries suite %q, want %q", parsed.SuiteName(), suite.Name())
			}
			// Bob gives no suite: he takes the invitation's.
			gb, err := Join(ctx, bob, parsed, stB, "alice", ga.Heads())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gb.Close() })
			if gb.Suite().Name() != suite.Name() {
				t.Fatalf("joiner seals with %q, want %q", gb.Suite().Name(), suite.Name())
			}
			inv2, err := ga.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			gc, err := Join(ctx, carol, inv2, n.storage(), "alice", ga.Heads(), WithSuite(suite))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gc.Close() })
			a, b, c := &replica{"alice", alice, ga}, &replica{"bob", bob, gb}, &replica{"carol", carol, gc}
			syncAll(t, a, b, c)
			send(t, a, "one")
			send(t, b, "two")
			syncAll(t, a, b, c)
			if err := ga.RemoveMember(ctx, carol.AccountKey()); err != nil {
				t.Fatal(err)
			}
			syncAll(t, a, b, c)
			send(t, b, "three")
			syncAll(t, a, b, c)
			for _, r := range []*replica{a, b} {
				if got := sortedBodies(t, r.g); !slices.Equal(got, []string{"one", "three", "two"}) {
					t.Fatalf("%s reads %q", r.name, got)
				}
			}
			if got := bodies(t, gc); slices.Contains(got, "three") {
				t.Fatal("the removed member reads a message of the new epoch")
			}

			// The payloads are sealed with the suite: the message body
			// opens under it and not under the other suite.
			ks := testKeystore(t)
			if err := gb.SaveKeys(ks); err != nil {
				t.Fatal(err)
			}
			gb.Close()
			gb2, err := Open(ctx, bob, ks, ga.ID(), stB)
			if err != nil {
				t.Fatal(err)
			}
			defer gb2.Close()
			if gb2.Suite().Name() != suite.Name() {
				t.Fatalf("reopened group seals with %q, want %q", gb2.Suite().Name(), suite.Name())
			}
			if got := sortedBodies(t, gb2); !slices.Equal(got, []string{"one", "three", "two"}) {
				t.Fatalf("reopened bob reads %q", got)
			}
			b = &replica{"bob", bob, gb2}
			send(t, b, "four")
			pull(t, a, b)
			if got := bodies(t, ga); !slices.Contains(got, "four") {
				t.Fatalf("alice cannot read bob after his reopen: %q", got)
			}

			other := crypto.Suite(crypto.AESGCMSuite{})
			if suite.Name() == other.Name() {
				other = crypto.DefaultSuite()
			}
			if _, err := Open(ctx, bob, ks, ga.ID(), stB, WithSuite(other)); !errors.Is(err, ErrSuiteMismatch) {
				t.Fatalf("reopen with suite %q: %v, want ErrSuiteMismatch", other.Name(), err)
			}
		})
	}
}

// A device given another suite than the group's cannot join: clearly
// with the suite in the invitation, and fail-closed without it (a token
// stripped of its suite): it opens none of the group's payloads.
func TestSuiteMismatch(t *testing.T) {
	pairs := []struct{ group, joiner crypto.Suite }{
		{crypto.AESGCMSuite{}, crypto.DefaultSuite()},
		{crypto.DefaultSuite(), crypto.AESGCMSuite{}},
	}
	for _, p := range pairs {
		t.Run(p.group.Name()+" joined with "+p.joiner.Name(), func(t *testing.T) {
			n := newNet()
			ctx := ctxT(t)
			ga, err := Create(ctx, newIdentity(t), n.storage(), WithSuite(p.group))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ga.Close() })
			a := &replica{"alice", nil, ga}
			send(t, a, "secret")
			inv, err := ga.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Join(ctx, newIdentity(t), inv, n.storage(), "alice", ga.Heads(), WithSuite(p.joiner))
			if !errors.Is(err, ErrSuiteMismatch) {
				t.Fatalf("join: %v, want ErrSuiteMismatch", err)
			}

			stripped := *inv
			stripped.Suite = p.joiner.Name()
			if p.joiner.Name() == crypto.DefaultSuite().Name() {
				stripped.Suite = ""
			}
			g, err := Join(ctx, newIdentity(t), &stripped, n.storage(), "alice", ga.Heads())
			if err == nil {
				defer g.Close()
				t.Fatalf("joined a %s group sealing with %s; reads %q", p.group.Name(), p.joiner.Name(), bodies(t, g))
			}
			if !errors.Is(err, ErrWrongGroup) {
				t.Fatalf("join with a stripped token: %v, want ErrWrongGroup (nothing of the group opens)", err)
			}
		})
	}
}

func TestWithSuiteRefuses(t *testing.T) {
	var c config
	if err := WithSuite(nil)(&c); !errors.Is(err, crypto.ErrInvalidOption) {
		t.Fatalf("nil suite: %v", err)
	}
	if err := WithSuite(crypto.AESGCMSuite{})(&c); err != nil || c.suite.Name() != crypto.AESGCMSuiteName {
		t.Fatalf("AES-GCM suite: %v", err)
	}
	// An invitation naming a suite this device does not have.
	var d config
	if err := groupSuite("rot13")(&d); !errors.Is(err, ErrSuiteMismatch) {
		t.Fatalf("unknown suite: %v", err)
	}
}

func TestInvitationSuiteToken(t *testing.T) {
	base := Invitation{Kind: KindMulti, Group: crypto.PublicKey{1}}
	def := base
	aes := base
	aes.Suite = crypto.AESGCMSuiteName
	if len(aes.Token()) <= len(def.Token()) {
		t.Fatal("a non-default suite adds nothing to the token")
	}
	for _, tc := range []struct {
		name string
		inv  Invitation
		want string
	}{
		{"default", def, crypto.DefaultSuite().Name()},
		{"aes", aes, crypto.AESGCMSuiteName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInvitation(tc.inv.Token())
			if err != nil {
				t.Fatal(err)
			}
			if got.SuiteName() != tc.want {
				t.Fatalf("suite %q, want %q", got.SuiteName(), tc.want)
			}
		})
	}
	// The default suite written out is refused: one token per invitation.
	explicit := base
	explicit.Suite = crypto.DefaultSuite().Name()
	if _, err := ParseInvitation(explicit.Token()); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("explicit default suite: %v, want ErrTokenMalformed", err)
	}
}

func sortedBodies(t testing.TB, g *Group) []string {
	t.Helper()
	b := bodies(t, g)
	slices.Sort(b)
	return b
}
