// Package messenger is a node's messaging service: the account and device
// from the keystore (core/crypto), the groups this device holds (core/group,
// their keys in the keystore and their logs, list and delivered messages in
// an sdk.Store), and the replication of every group's two logs with other
// nodes over an sdk.Network. The client API (core/api) serves it.
//
// It depends on plain Go interfaces only (sdk.Store, sdk.Network): no
// libp2p, no boxo.
//
// Replication: the messenger runs one core/replication Replicator over the
// network and adds both logs of every group it holds (channels "meta" and
// "messages") under the group's replication key (group.ReplicationKey), so
// a group's pubsub topic and log wire ids derive from a secret its members
// share and not from its public key. Joins run the group's processing
// (group.ReplicatedLog): every entry is verified before it is accepted,
// membership is rebuilt, messages are opened and delivered, and the
// group's keys are saved afterwards. Local appends are announced with
// small entries inline; heads are swapped with each peer as it connects
// and by periodic anti-entropy; peers are cut off only when provably the
// author of bad data (docs/replication.md). A joiner opens the group from
// its invitation (group.OpenInvitation), replicates its logs, and writes
// its device-added entry once the members' metadata has arrived.
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
//
// Devices (devices.go, device_sync.go): one account on several nodes.
// LinkDevice makes a one-time link token; JoinAccount on a fresh node
// fetches the account keys and an invitation to every group over
// LinkProtocol, joins them, and imports the history over HistoryProtocol.
// The account group (hidden from Groups) holds the devices, their names and
// records of the groups each device creates, joins or leaves, which the
// others follow. RemoveDevice removes a device from every group
// (docs/protocol.md, "Devices").
//
//	tok, _, _ := laptop.LinkDevice(ctx, 0)           // shown to the new device
//	res, err := phone.JoinAccount(ctx, tok, "phone", nil)
//	_, n, err := laptop.RemoveDevice(ctx, "phone")
package messenger
