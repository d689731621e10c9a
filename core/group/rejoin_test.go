package group

import (
	"errors"
	"testing"
)

// A Join that fails because the heads it was given lack the invitation
// still commits the entries it verified. A retry with the same storage must
// start from them: before the state was rebuilt from the stored log, the
// retry judged the invitation entry against an empty membership ("written
// by device ..., which was never added") and failed on every attempt.
func TestJoinRetryAfterPartialJoin(t *testing.T) {
	tests := []struct {
		name string
		// first gives the heads of the failed first attempt.
		first func(before, after Heads) Heads
	}{
		{"heads from before the invitation", func(before, _ Heads) Heads { return before }},
		{"meta heads only, from before the invitation", func(before, _ Heads) Heads { return Heads{Meta: before.Meta} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet()
			ctx := ctxT(t)
			alice := newIdentity(t)
			ga, err := Create(ctx, alice, n.storage())
			if err != nil {
				t.Fatal(err)
			}
			defer ga.Close()
			before := ga.Heads()
			inv, err := ga.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			after := ga.Heads()

			bob := newIdentity(t)
			st := n.storage() // bob's storage, kept across the attempts
			if g, err := Join(ctx, bob, inv, st, "alice", tc.first(before, after)); !errors.Is(err, ErrInvitationUnknown) {
				if g != nil {
					g.Close()
				}
				t.Fatalf("join with heads lacking the invitation: %v, want ErrInvitationUnknown", err)
			}
			gb, err := Join(ctx, bob, inv, st, "alice", after)
			if err != nil {
				t.Fatalf("retry with the full heads: %v", err)
			}
			defer gb.Close()
			a, b := &replica{name: "alice", id: alice, g: ga}, &replica{name: "bob", id: bob, g: gb}
			syncAll(t, a, b)
			if got := len(gb.Members()); got != 2 {
				t.Fatalf("bob sees %d members, want 2", got)
			}
			send(t, b, "hello after retry")
			syncAll(t, a, b)
			if got := bodies(t, ga); len(got) != 1 || got[0] != "hello after retry" {
				t.Fatalf("alice reads %q", got)
			}
		})
	}
}
