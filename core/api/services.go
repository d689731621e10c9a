package api

import (
	"context"
	"errors"

	"github.com/ipfs/go-cid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/core/group"
	"github.com/skein-p2p/skein/core/messenger"
	"github.com/skein-p2p/skein/core/peersource"
)

// SubscribedHeader is the response header Messages.Subscribe sends once
// the subscription is registered; a client that waits for it (stream.Header)
// misses nothing delivered afterwards.
const SubscribedHeader = "skein-subscribed"

// service implements every api/v1 service over one messenger.
type service struct {
	m       *messenger.Messenger
	sources *peersource.Book // nil: no sources known
	// sendWindow: the most sends one SendStream keeps unacknowledged.
	sendWindow int
}

// One type per service: several have methods of the same name.
type (
	accountServer struct {
		apiv1.UnimplementedAccountServer
		*service
	}
	contactsServer struct {
		apiv1.UnimplementedContactsServer
		*service
	}
	groupsServer struct {
		apiv1.UnimplementedGroupsServer
		*service
	}
	messagesServer struct {
		apiv1.UnimplementedMessagesServer
		*service
	}
	peersServer struct {
		apiv1.UnimplementedPeersServer
		*service
	}
	syncServer struct {
		apiv1.UnimplementedSyncServer
		*service
	}
	replicationNodeServer struct {
		apiv1.UnimplementedReplicationNodeServer
		*service
	}
	nodeServer struct {
		apiv1.UnimplementedNodeServer
		plugins func(context.Context) []*apiv1.PluginStatus
	}
)

func register(s *grpc.Server, m *messenger.Messenger, cfg Config) {
	window := cfg.SendWindow
	if window <= 0 || window > apiv1.MaxSendsInFlight {
		window = apiv1.MaxSendsInFlight
	}
	svc := &service{m: m, sources: cfg.PeerSources, sendWindow: window}
	plugins := cfg.Plugins
	apiv1.RegisterNodeServer(s, nodeServer{plugins: plugins})
	apiv1.RegisterAccountServer(s, accountServer{service: svc})
	apiv1.RegisterContactsServer(s, contactsServer{service: svc})
	apiv1.RegisterGroupsServer(s, groupsServer{service: svc})
	apiv1.RegisterMessagesServer(s, messagesServer{service: svc})
	apiv1.RegisterPeersServer(s, peersServer{service: svc})
	apiv1.RegisterSyncServer(s, syncServer{service: svc})
	apiv1.RegisterReplicationNodeServer(s, replicationNodeServer{service: svc})
	apiv1.RegisterDevicesServer(s, devicesServer{service: svc}) // devices.go
}

// toStatus maps an error to a gRPC status with its text (errors of this
// code base never carry secrets).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, messenger.ErrGroupNotFound), errors.Is(err, messenger.ErrMemberNotFound):
		code = codes.NotFound
	case errors.Is(err, messenger.ErrAmbiguous), errors.Is(err, messenger.ErrInvalidArgument),
		errors.Is(err, group.ErrTokenPrefix), errors.Is(err, group.ErrTokenEncoding), errors.Is(err, group.ErrTokenTruncated),
		errors.Is(err, group.ErrTokenChecksum), errors.Is(err, group.ErrTokenType), errors.Is(err, group.ErrTokenMalformed),
		errors.Is(err, group.ErrWrongGroup):
		code = codes.InvalidArgument
	case errors.Is(err, group.ErrNotMember), errors.Is(err, group.ErrRemoved), errors.Is(err, group.ErrInvitationUnknown),
		errors.Is(err, group.ErrClosed), errors.Is(err, messenger.ErrClosed),
		errors.Is(err, messenger.ErrNotReplicationNode), errors.Is(err, messenger.ErrNoDirectRequests):
		code = codes.FailedPrecondition
	case errors.Is(err, messenger.ErrNotAuthorized):
		code = codes.PermissionDenied
	case errors.Is(err, messenger.ErrTooManyGroups):
		code = codes.ResourceExhausted
	case errors.Is(err, messenger.ErrUnreachable):
		// Not UNAVAILABLE: clients read that as the node itself gone.
		code = codes.NotFound
	}
	return status.Error(code, err.Error())
}

func groupInfo(g messenger.GroupInfo) *apiv1.GroupInfo {
	kind := g.Kind.String()
	if g.Kind == group.KindMulti {
		kind = "multi"
	}
	return &apiv1.GroupInfo{Id: g.ID.String(), Name: g.Name, Kind: kind, Epoch: g.Epoch.String(), MemberCount: uint32(g.Members), Left: g.Left}
}

func message(gid crypto.PublicKey, m *group.Message) *apiv1.Message {
	return &apiv1.Message{
		Cid: m.CID.String(), Group: gid.String(), Sender: m.Sender.String(), Account: m.Account.String(),
		SentAt: m.SentAt.UnixNano(), Time: m.Time, Body: m.Body,
	}
}

// groupName names a group as `skein group list` shows it: its local name,
// else the start of its id.
func groupName(gi messenger.GroupInfo) string {
	if gi.Name != "" {
		return "group " + gi.Name
	}
	return "group " + gi.ID.String()[:12]
}

func parseCID(what, s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, nil
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, status.Errorf(codes.InvalidArgument, "%s: %q is not a cid: %v", what, s, err)
	}
	return c, nil
}

// ---- node ----

func (s nodeServer) Plugins(ctx context.Context, _ *apiv1.PluginsRequest) (*apiv1.PluginsResponse, error) {
	if s.plugins == nil {
		return nil, status.Error(codes.Unimplemented, "this node does not report its plugins")
	}
	return &apiv1.PluginsResponse{Plugins: s.plugins(ctx)}, nil
}

// ---- account ----

func (s accountServer) Get(context.Context, *apiv1.GetAccountRequest) (*apiv1.AccountInfo, error) {
	id := s.m.Identity()
	n := s.m.Network()
	return &apiv1.AccountInfo{
		Account: id.AccountKey().String(), AccountFingerprint: id.AccountKey().Fingerprint(),
		Device: id.DeviceKey().String(), DeviceFingerprint: id.DeviceKey().Fingerprint(),
		PeerId: n.PeerID(), Addrs: n.Addrs(),
	}, nil
}

// ---- contacts ----

func (s contactsServer) Share(_ context.Context, r *apiv1.ShareContactRequest) (*apiv1.ShareContactResponse, error) {
	tok, err := s.m.ContactToken(r.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	qr, err := group.RenderQR(tok)
	if err != nil {
		qr = "" // the token is still usable as text
	}
	return &apiv1.ShareContactResponse{Token: tok, Qr: qr}, nil
}

func (s contactsServer) Add(ctx context.Context, r *apiv1.AddContactRequest) (*apiv1.AddContactResponse, error) {
	req, gi, err := s.m.AddContact(ctx, r.GetToken(), r.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.AddContactResponse{RequestToken: req, Group: groupInfo(gi)}, nil
}

func (s contactsServer) Accept(ctx context.Context, r *apiv1.AcceptContactRequest) (*apiv1.AcceptContactResponse, error) {
	gi, err := s.m.AcceptContact(ctx, r.GetRequestToken())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.AcceptContactResponse{Group: groupInfo(gi)}, nil
}

func (c contactsServer) List(context.Context, *apiv1.ListContactsRequest) (*apiv1.ListContactsResponse, error) {
	out := &apiv1.ListContactsResponse{}
	for _, g := range c.m.Groups() {
		if g.Kind == group.KindContact {
			out.Contacts = append(out.Contacts, groupInfo(g))
		}
	}
	return out, nil
}

// ---- groups ----

func (s groupsServer) Create(ctx context.Context, r *apiv1.CreateGroupRequest) (*apiv1.GroupInfo, error) {
	gi, err := s.m.CreateGroup(ctx, r.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return groupInfo(gi), nil
}

func (s groupsServer) Invite(ctx context.Context, r *apiv1.InviteRequest) (*apiv1.InviteResponse, error) {
	inv, err := s.m.Invite(ctx, r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	tok := inv.Token()
	qr, err := group.RenderQR(tok)
	if err != nil {
		qr = ""
	}
	return &apiv1.InviteResponse{Token: tok, Qr: qr}, nil
}

func (s groupsServer) Join(ctx context.Context, r *apiv1.JoinGroupRequest) (*apiv1.GroupInfo, error) {
	gi, err := s.m.JoinGroup(ctx, r.GetToken(), r.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return groupInfo(gi), nil
}

func (s groupsServer) Members(_ context.Context, r *apiv1.MembersRequest) (*apiv1.MembersResponse, error) {
	ms, err := s.m.Members(r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	self := s.m.Identity().AccountKey()
	out := &apiv1.MembersResponse{}
	for _, mb := range ms {
		pm := &apiv1.Member{Account: mb.Account.String(), Fingerprint: mb.Account.Fingerprint(), Self: mb.Account.Equal(self)}
		for _, d := range mb.Devices {
			pm.Devices = append(pm.Devices, d.String())
		}
		out.Members = append(out.Members, pm)
	}
	return out, nil
}

func (s groupsServer) RemoveMember(ctx context.Context, r *apiv1.RemoveMemberRequest) (*apiv1.GroupInfo, error) {
	gi, err := s.m.RemoveMember(ctx, r.GetGroup(), r.GetMember())
	if err != nil {
		return nil, toStatus(err)
	}
	return groupInfo(gi), nil
}

func (s groupsServer) Leave(ctx context.Context, r *apiv1.LeaveGroupRequest) (*apiv1.LeaveGroupResponse, error) {
	if err := s.m.Leave(ctx, r.GetGroup()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.LeaveGroupResponse{}, nil
}

func (s groupsServer) List(context.Context, *apiv1.ListGroupsRequest) (*apiv1.ListGroupsResponse, error) {
	out := &apiv1.ListGroupsResponse{}
	for _, g := range s.m.Groups() {
		out.Groups = append(out.Groups, groupInfo(g))
	}
	return out, nil
}

func (s groupsServer) Get(_ context.Context, r *apiv1.GetGroupRequest) (*apiv1.GroupInfo, error) {
	gi, err := s.m.Resolve(r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return groupInfo(gi), nil
}

// ---- messages ----

func (s messagesServer) Send(ctx context.Context, r *apiv1.SendRequest) (*apiv1.Message, error) {
	gi, err := s.m.Resolve(r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	if len(r.GetBody()) > apiv1.MaxMessageBytes {
		// No size in the text: a client may send only the first
		// MaxMessageBytes+1 bytes of what it was given.
		return nil, status.Errorf(codes.InvalidArgument, "message to %s is larger than %d bytes (960 KiB), the most one message may hold", groupName(gi), apiv1.MaxMessageBytes)
	}
	msg, err := s.m.Send(ctx, gi.ID.String(), r.GetBody())
	if err != nil {
		return nil, toStatus(err)
	}
	return message(gi.ID, msg), nil
}

func (s messagesServer) List(ctx context.Context, r *apiv1.ListMessagesRequest) (*apiv1.ListMessagesResponse, error) {
	gi, err := s.m.Resolve(r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	since, err := parseCID("since", r.GetSince())
	if err != nil {
		return nil, err
	}
	until, err := parseCID("until", r.GetUntil())
	if err != nil {
		return nil, err
	}
	msgs, err := s.m.Messages(ctx, gi.ID.String(), messenger.ListOptions{Since: since, Until: until, Reverse: r.GetReverse(), Limit: int(r.GetLimit())})
	if err != nil {
		return nil, toStatus(err)
	}
	unheld, err := s.m.Unheld(ctx, gi.ID.String())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &apiv1.ListMessagesResponse{Messages: make([]*apiv1.Message, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = message(gi.ID, m)
		out.Messages[i].HeldElsewhere = !unheld[m.CID]
	}
	return out, nil
}

func (s messagesServer) Subscribe(r *apiv1.SubscribeRequest, stream grpc.ServerStreamingServer[apiv1.Message]) error {
	ctx := stream.Context()
	since, err := parseCID("since", r.GetSince())
	if err != nil {
		return err
	}
	// Subscribe before replaying so that nothing delivered in between is
	// lost; the replay's messages are then skipped on the live stream.
	ch, gi, err := s.m.Subscribe(ctx, r.GetGroup())
	if err != nil {
		return toStatus(err)
	}
	// The header tells the client the subscription is in place: whatever
	// is delivered from now on will be streamed.
	if err := stream.SendHeader(metadata.Pairs(SubscribedHeader, "1")); err != nil {
		return err
	}
	sent := map[cid.Cid]bool{}
	dev := s.m.Identity().DeviceKey()
	if r.GetReplay() {
		msgs, err := s.m.Messages(ctx, gi.ID.String(), messenger.ListOptions{Since: since})
		if err != nil {
			return toStatus(err)
		}
		unheld, err := s.m.Unheld(ctx, gi.ID.String())
		if err != nil {
			return toStatus(err)
		}
		for _, m := range msgs {
			sent[m.CID] = true
			out := message(gi.ID, m)
			out.HeldElsewhere = m.Sender != dev || !unheld[m.CID]
			if err := stream.Send(out); err != nil {
				return err
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return status.Error(codes.Unavailable, "subscription ended: the node is stopping")
			}
			if sent[m.CID] {
				delete(sent, m.CID)
				continue
			}
			out := message(gi.ID, m)
			out.HeldElsewhere = m.Sender != dev // an own message just sent is held here only
			if err := stream.Send(out); err != nil {
				return err
			}
		}
	}
}

// ---- peers ----

func (s peersServer) List(ctx context.Context, _ *apiv1.ListPeersRequest) (*apiv1.ListPeersResponse, error) {
	ps, err := s.m.Peers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &apiv1.ListPeersResponse{}
	for _, p := range ps {
		out.Peers = append(out.Peers, &apiv1.Peer{Id: p.ID, Addrs: p.Addrs, FoundBy: s.sources.Sources(p.ID)})
	}
	return out, nil
}

func (s peersServer) Connect(ctx context.Context, r *apiv1.ConnectPeerRequest) (*apiv1.ConnectPeerResponse, error) {
	p, err := s.m.Connect(ctx, r.GetAddr())
	if err != nil {
		return nil, toStatus(err)
	}
	s.sources.Record(p.ID, peersource.Manual)
	return &apiv1.ConnectPeerResponse{Peer: &apiv1.Peer{Id: p.ID, Addrs: p.Addrs}}, nil
}

// ---- sync ----

func (s syncServer) Status(ctx context.Context, r *apiv1.SyncStatusRequest) (*apiv1.SyncStatusResponse, error) {
	sts, err := s.m.SyncStatus(ctx, r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &apiv1.SyncStatusResponse{}
	for _, st := range sts {
		gs := groupSync(st)
		if gi, err := s.m.Resolve(st.Group.String()); err == nil {
			gs.Name = gi.Name
		}
		out.Groups = append(out.Groups, gs)
	}
	return out, nil
}

func groupSync(st messenger.SyncStatus) *apiv1.GroupSync {
	gs := &apiv1.GroupSync{Group: st.Group.String(), Peers: st.Peers, InSync: st.InSync(),
		RendezvousFound: st.Rendezvous.Found, RendezvousError: st.Rendezvous.Error,
		State: st.State(), Reachable: st.Reachable}
	if !st.LastReachable.IsZero() {
		gs.LastReachable = st.LastReachable.UnixNano()
	}
	if !st.LastSync.IsZero() {
		gs.LastSync = st.LastSync.UnixNano()
	}
	if !st.Rendezvous.Last.IsZero() {
		gs.LastRendezvous = st.Rendezvous.Last.UnixNano()
	}
	for _, l := range st.Logs {
		ls := &apiv1.LogSync{Log: l.Log, Missing: uint64(l.Missing), Entries: uint64(l.Entries), GivenUp: l.GivenUp,
			Fetched: l.Fetched, FetchedBytes: l.FetchedBytes, MissingEntries: l.MissingEntries, Unheld: uint64(l.Unheld)}
		for _, c := range l.LocalHeads {
			ls.LocalHeads = append(ls.LocalHeads, c.String())
		}
		for _, c := range l.RemoteHeads {
			ls.RemoteHeads = append(ls.RemoteHeads, c.String())
		}
		gs.Logs = append(gs.Logs, ls)
	}
	return gs
}

func (s groupsServer) Replicate(ctx context.Context, r *apiv1.ReplicateGroupRequest) (*apiv1.ReplicateGroupResponse, error) {
	if err := s.m.RegisterWithReplicationNode(ctx, r.GetGroup(), r.GetToken()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ReplicateGroupResponse{}, nil
}

// ---- replication node ----

func (s replicationNodeServer) Token(context.Context, *apiv1.ReplicationTokenRequest) (*apiv1.ReplicationTokenResponse, error) {
	tok, err := s.m.ReplicationNodeToken()
	if err != nil {
		return nil, toStatus(err)
	}
	t, err := group.ParseReplicationNodeToken(tok)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ReplicationTokenResponse{Token: tok, Peer: t.Peer, Addrs: t.Addrs}, nil
}

func (s replicationNodeServer) List(context.Context, *apiv1.ListReplicasRequest) (*apiv1.ListReplicasResponse, error) {
	if !s.m.IsReplicationNode() {
		return nil, toStatus(messenger.ErrNotReplicationNode)
	}
	out := &apiv1.ListReplicasResponse{}
	for _, r := range s.m.Replicas() {
		kind := ""
		if r.Kind != 0 {
			kind = r.Kind.String()
			if r.Kind == group.KindMulti {
				kind = "multi"
			}
		}
		regs := make([]*apiv1.Registration, len(r.Registrations))
		for i, g := range r.Registrations {
			regs[i] = &apiv1.Registration{Peer: g.Peer, At: g.At.UnixNano()}
		}
		out.Replicas = append(out.Replicas, &apiv1.Replica{Group: r.ID.String(), Kind: kind, RegisteredBy: r.RegisteredBy,
			RegisteredAt: r.Registered.UnixNano(), Sync: groupSync(r.Sync), Registrations: regs})
	}
	return out, nil
}

func (s replicationNodeServer) Remove(ctx context.Context, r *apiv1.RemoveReplicaRequest) (*apiv1.RemoveReplicaResponse, error) {
	id, err := s.m.RemoveReplica(ctx, r.GetGroup())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.RemoveReplicaResponse{Group: id.String()}, nil
}
