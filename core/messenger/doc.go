// Package messenger is a node's messaging service: the account and device
// from the keystore (core/crypto), the groups this device holds (core/group,
// their keys in the keystore and their logs, list and delivered messages in
// an sdk.Store), and the replication of every group's two logs with other
// nodes over an sdk.Network. The client API (core/api) serves it.
//
// It depends on plain Go interfaces only (sdk.Store, sdk.Network,
// Replicator): no libp2p, no boxo.
//
// Replication: a Replicator keeps the groups' logs in sync. The built-in
// NetworkReplicator announces a group's heads on a pubsub topic derived
// from the group id (TopicFor) after every local write, merges the heads
// peers announce through group.Receive (which verifies every entry before
// accepting it and fetches missing entries through the network's blocks),
// swaps heads with each peer as it connects (sdk.PeerNotifier +
// sdk.DirectMessenger, when the network has them), and re-announces
// periodically so a dropped announcement never leaves a peer behind. A
// joiner asks members for the heads (FetchHeads) before it holds the group.
//
// Usage sketch:
//
//	ks, _ := crypto.OpenKeystore(filepath.Join(dataDir, "keystore"))
//	m, err := messenger.New(ctx, messenger.Config{Keystore: ks, Store: store, Network: network})
//	defer m.Close()
//	g, _ := m.CreateGroup(ctx, "friends")
//	inv, _ := m.Invite(ctx, "friends")            // inv.Token() for the invitee
//	// on the invitee's node: m2.JoinGroup(ctx, token, "friends")
//	msg, _ := m.Send(ctx, "friends", []byte("hi"))
//	ch, _, _ := m.Subscribe(ctx, "friends")         // delivered messages as they arrive
//
// Groups are named by their local name or a prefix of their hex id
// (Resolve).
package messenger
