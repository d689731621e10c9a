// Package group implements Skein groups on top of core/log and core/crypto:
// membership, epochs, invitations, contact requests and end-to-end
// encrypted messages.
//
// A group is an Ed25519 key pair (its public key is the group id) plus a
// secret per epoch. There are three kinds: an account group (the devices of
// one account, derived from the account key), a contact group (two
// accounts; both sides derive the same group from an X25519 agreement of
// their contact keys) and a multi-member group (created at random, joined
// by invitation).
//
// Each group has two Merkle logs. The metadata log holds the membership:
// group created, device added (carrying the device certificate its account
// signed, authorized by the group key or an invitation key), invitation
// created, chain keys shared to each member device (sealed to that
// device's X25519 key), rekeys (member removed: a new epoch with a fresh
// secret sealed to the remaining devices only), member left,
// application metadata, and device removed (one device of the writer's own
// account leaves, the account stays: RemoveDevice). The message log holds envelopes: the epoch, a
// header (sender device, ratchet index) sealed under a key derived from the
// epoch secret, and the body sealed with the sender device's ratchet
// message key. Every metadata payload and every envelope's epoch is sealed
// under a key derived from the group's replication key, so the blocks,
// which any CID holder can fetch, name no account; a replication node,
// which holds that key and no other, checks write access on both logs and
// stores and serves them, and reads no message. A member shares its
// sending chain with the devices that lack it just before it sends (one
// entry for all of them), so N joins cost O(N) metadata entries. The
// membership is applied incrementally (fold.go). docs/protocol.md (Groups)
// specifies every format and rule; docs/threat-model.md says what each
// adversary learns.
//
// Usage sketch (replicas exchange heads; in a node the network plugin
// announces them and moves the blocks):
//
//	id, _ := group.NewIdentity()                 // or group.LoadIdentity(keystore)
//	st := group.Storage{Blocks: blocks, KV: kv}  // log.NewMemBlockStore(), log.NewMemKV() in tests
//	g, err := group.Create(ctx, id, st)
//	inv, _ := g.Invite(ctx)
//	text := inv.Token()                          // "skein1-…", or group.RenderQR(text)
//
//	// on the joiner, with heads from a member:
//	inv, err := group.ParseInvitation(text)
//	g2, err := group.Join(ctx, id2, inv, st2, "peer", heads)
//
//	msg, err := g.Send(ctx, []byte("hello"))
//	err = g2.Receive(ctx, "peer", g.Heads())     // *RejectedError lists refused entries
//	for m, err := range g2.Messages(ctx, group.Since(lastSeen)) { ... }
//	for m := range g2.Subscribe(ctx) { ... }
//	err = g.RemoveMember(ctx, account)           // new epoch without that account
//
// A replication node calls Replicate with the group's public key and
// replication key: it runs the same write-access checks, stores and serves
// both logs, and reads no message.
//
// Persistence: SaveKeys writes the group's keys and ratchet states to a
// crypto.Keystore (sealed at rest); delivered messages are kept sealed in
// the group's KV as they arrive; Open restores a group after a restart.
// SaveIdentity and LoadIdentity keep the device's own keys.
//
// Contacts: A shares id.ContactToken(name).Token(); B calls RequestContact
// with it and delivers the returned ContactRequest to A by any channel; A
// calls AcceptContact. Both end in the same contact group.
package group
