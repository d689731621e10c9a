package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skein-p2p/skein/core/crypto"
)

func TestContactRequestAccept(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	alice, bob := newIdentity(t), newIdentity(t)

	// Alice shares her token as text; Bob pastes it and makes a request.
	ct, err := alice.ContactToken("Alice")
	if err != nil {
		t.Fatal(err)
	}
	token, err := ParseContactToken(ct.Token())
	if err != nil {
		t.Fatal(err)
	}
	req, gb, err := RequestContact(ctx, bob, token, "Bob", n.storage())
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	// The request reaches Alice by any channel, here as text.
	q, err := ParseContactRequest(req.Token())
	if err != nil {
		t.Fatal(err)
	}
	ga, err := AcceptContact(ctx, alice, q, n.storage())
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	if !ga.ID().Equal(gb.ID()) {
		t.Fatalf("alice's contact group %s, bob's %s", fp(ga.ID()), fp(gb.ID()))
	}
	a, b := &replica{name: "alice", id: alice, g: ga}, &replica{name: "bob", id: bob, g: gb}
	syncAll(t, a, b)
	send(t, a, "hi bob")
	send(t, b, "hi alice")
	syncAll(t, a, b)
	if got, want := bodies(t, ga), bodies(t, gb); len(got) != 2 || !slices.Equal(got, want) {
		t.Fatalf("alice %q, bob %q", got, want)
	}
	if m := ga.Members(); len(m) != 2 {
		t.Fatalf("contact group members: %d", len(m))
	}

	t.Run("request to someone else", func(t *testing.T) {
		carol := newIdentity(t)
		if _, err := AcceptContact(ctx, carol, q, n.storage()); !errors.Is(err, ErrWrongGroup) {
			t.Fatalf("got %v, want ErrWrongGroup", err)
		}
	})
	t.Run("third account cannot join the contact group", func(t *testing.T) {
		inv, err := ga.Invite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Join(ctx, newIdentity(t), inv, n.storage(), "alice", ga.Heads())
		if !errors.Is(err, ErrNotCertified) {
			t.Fatalf("got %v, want ErrNotCertified", err)
		}
	})
}

func TestAccountGroup(t *testing.T) {
	n := newNet()
	ctx := ctxT(t)
	laptop := newIdentity(t)
	g1, err := CreateAccountGroup(ctx, laptop, n.storage())
	if err != nil {
		t.Fatal(err)
	}
	defer g1.Close()
	// A phone certified by the same account, without the account key.
	phone, err := NewDevice(laptop.Account, laptop.ContactKey)
	if err != nil {
		t.Fatal(err)
	}
	phone.Account = nil
	inv, err := g1.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Join(ctx, phone, inv, n.storage(), "laptop", g1.Heads())
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	l, p := &replica{name: "laptop", id: laptop, g: g1}, &replica{name: "phone", id: phone, g: g2}
	syncAll(t, l, p)
	send(t, p, "note to self")
	syncAll(t, l, p)
	if got := bodies(t, g1); !slices.Equal(got, []string{"note to self"}) {
		t.Fatalf("laptop has %q", got)
	}
	if m := g1.Members(); len(m) != 1 || len(m[0].Devices) != 2 {
		t.Fatalf("members %+v, want one account with two devices", m)
	}
	// Another account's device cannot use the invitation.
	inv2, _ := g1.Invite(ctx)
	if _, err := Join(ctx, newIdentity(t), inv2, n.storage(), "laptop", g1.Heads()); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("foreign device joins the account group: %v, want ErrNotCertified", err)
	}
}

// TestConvergence: members send concurrently on their own replicas, then
// exchange heads in a random order with duplicates and partial rounds; in
// the end every replica holds the same messages in the same order.
func TestConvergence(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			n := newNet()
			rs := n.create(t, "alice", "bob", "carol")
			rng := rand.New(rand.NewPCG(seed, 7))
			const perMember = 15
			var wg sync.WaitGroup
			for _, r := range rs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perMember; i++ {
						if _, err := r.g.Send(context.Background(), []byte(fmt.Sprintf("%s %d", r.name, i))); err != nil {
							t.Errorf("%s: %v", r.name, err)
							return
						}
					}
				}()
			}
			// Meanwhile, random partial exchanges (concurrent with the sends).
			for i := 0; i < 20; i++ {
				a, b := rs[rng.IntN(3)], rs[rng.IntN(3)]
				if a != b {
					if err := a.g.Receive(ctxT(t), b.name, b.g.Heads()); err != nil {
						t.Fatal(err)
					}
				}
			}
			wg.Wait()
			order := rng.Perm(3)
			for round := 0; round < 3; round++ {
				for _, i := range order {
					for _, j := range rng.Perm(3) {
						if i != j {
							pull(t, rs[i], rs[j])
							pull(t, rs[i], rs[j]) // duplicate delivery
						}
					}
				}
			}
			want := bodies(t, rs[0].g)
			if len(want) != 3*perMember {
				t.Fatalf("alice has %d messages, want %d", len(want), 3*perMember)
			}
			for _, r := range rs[1:] {
				if got := bodies(t, r.g); !slices.Equal(got, want) {
					t.Fatalf("%s's order differs:\n%q\nalice:\n%q", r.name, got, want)
				}
			}
		})
	}
}

func TestMessagesRange(t *testing.T) {
	n := newNet()
	r := n.create(t, "alice")[0]
	var ms []*Message
	for i := 0; i < 5; i++ {
		ms = append(ms, send(t, r, fmt.Sprint(i)))
	}
	list := func(opts ...ListOption) []string {
		var out []string
		for m, err := range r.g.Messages(ctxT(t), opts...) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(m.Body))
		}
		return out
	}
	cases := []struct {
		name string
		opts []ListOption
		want []string
	}{
		{"all", nil, []string{"0", "1", "2", "3", "4"}},
		{"since", []ListOption{Since(ms[1].CID)}, []string{"2", "3", "4"}},
		{"until", []ListOption{Until(ms[2].CID)}, []string{"0", "1"}},
		{"since until", []ListOption{Since(ms[0].CID), Until(ms[3].CID)}, []string{"1", "2"}},
		{"reverse", []ListOption{Reverse()}, []string{"4", "3", "2", "1", "0"}},
		{"reverse since", []ListOption{Reverse(), Since(ms[2].CID)}, []string{"4", "3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.opts...); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	a, b := rs[0], rs[1]
	ctx, cancel := context.WithCancel(ctxT(t))
	ch := b.g.Subscribe(ctx)
	send(t, a, "one")
	send(t, a, "two")
	pull(t, b, a)
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-ch:
			got = append(got, string(m.Body))
		case <-deadline:
			t.Fatalf("got %q before the deadline", got)
		}
	}
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("got %q", got)
	}
	cancel()
	for range ch { // closed after cancel
	}
}

func TestIdentityKeystore(t *testing.T) {
	ks, err := crypto.OpenKeystore(t.TempDir()+"/ks", crypto.WithPassphrase([]byte("correct horse")), crypto.WithArgon2Params(crypto.Argon2Params{Time: 1, MemoryKiB: 1024, Threads: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	id := newIdentity(t)
	if err := SaveIdentity(ks, id); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIdentity(ks)
	if err != nil {
		t.Fatal(err)
	}
	if !got.DeviceKey().Equal(id.DeviceKey()) || !got.AccountKey().Equal(id.AccountKey()) ||
		got.Account == nil || got.ContactKey.Public() != id.ContactKey.Public() {
		t.Fatalf("loaded %v, saved %v", got, id)
	}
	// A certificate that does not match the device key is refused.
	other := newIdentity(t)
	cb, _ := other.Cert.MarshalBinary()
	if err := ks.Put(keyDeviceCert, cb); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(ks); !errors.Is(err, ErrNotCertified) {
		t.Fatalf("mismatched certificate: %v, want ErrNotCertified", err)
	}
}

func TestAppMetadata(t *testing.T) {
	n := newNet()
	rs := n.create(t, "alice", "bob")
	if err := rs[0].g.PutMetadata(ctxT(t), []byte("topic: lunch")); err != nil {
		t.Fatal(err)
	}
	pull(t, rs[1], rs[0])
	md := rs[1].g.Metadata()
	if len(md) != 1 || string(md[0].Data) != "topic: lunch" || !md[0].Writer.Equal(rs[0].id.DeviceKey()) {
		t.Fatalf("bob's metadata %+v", md)
	}
}
