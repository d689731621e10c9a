package group_test

import (
	"context"
	"fmt"

	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/log"
)

// Alice creates a group and invites Bob with a text token; Bob joins from
// Alice's heads and they exchange messages. The two replicas share an
// in-memory block store here; in a node the network plugin moves blocks.
func ExampleCreate() {
	ctx := context.Background()
	blocks := log.NewMemBlockStore()
	alice, _ := group.NewIdentity()
	bob, _ := group.NewIdentity()

	ga, err := group.Create(ctx, alice, group.Storage{Blocks: blocks, KV: log.NewMemKV()})
	if err != nil {
		panic(err)
	}
	defer ga.Close()

	inv, _ := ga.Invite(ctx)
	token := inv.Token() // send this text to Bob by any channel

	parsed, err := group.ParseInvitation(token)
	if err != nil {
		panic(err)
	}
	gb, err := group.Join(ctx, bob, parsed, group.Storage{Blocks: blocks, KV: log.NewMemKV()}, "alice", ga.Heads())
	if err != nil {
		panic(err)
	}
	defer gb.Close()
	_ = ga.Receive(ctx, "bob", gb.Heads()) // Alice learns of Bob and shares her chain key

	_, _ = ga.Send(ctx, []byte("hello Bob"))
	_ = gb.Receive(ctx, "alice", ga.Heads())
	_, _ = gb.Send(ctx, []byte("hello Alice"))
	_ = ga.Receive(ctx, "bob", gb.Heads())

	for m, err := range ga.Messages(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Println(string(m.Body))
	}
	fmt.Println(len(ga.Members()), "members")
	// Output:
	// hello Bob
	// hello Alice
	// 2 members
}

// A contact: Alice shares a contact token, Bob answers with a request, Alice
// accepts, and both hold the same contact group.
func ExampleAcceptContact() {
	ctx := context.Background()
	blocks := log.NewMemBlockStore()
	alice, _ := group.NewIdentity()
	bob, _ := group.NewIdentity()

	ct, _ := alice.ContactToken("Alice")
	token, _ := group.ParseContactToken(ct.Token())
	req, gb, err := group.RequestContact(ctx, bob, token, "Bob", group.Storage{Blocks: blocks, KV: log.NewMemKV()})
	if err != nil {
		panic(err)
	}
	defer gb.Close()
	ga, err := group.AcceptContact(ctx, alice, req, group.Storage{Blocks: blocks, KV: log.NewMemKV()})
	if err != nil {
		panic(err)
	}
	defer ga.Close()
	fmt.Println(ga.ID() == gb.ID(), ga.Kind())
	// Output: true contact
}

// An invitation token is short text with a checksum; a damaged one is a
// clear error.
func ExampleParseInvitation() {
	_, err := group.ParseInvitation("skein1-aaaaaaaaaaaaaaaaaaaaaa")
	fmt.Println(err)
	// Output: parse invitation: token checksum mismatch: the token was changed, cut or extended; copy it again
}
