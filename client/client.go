// Package client is the Go client of a running Skein node's client API
// (api/v1): it dials the node's unix socket (or TCP with a bearer token)
// and exposes one gRPC client per service.
//
// Usage:
//
//	c, err := client.Dial("~/.skein")        // a data directory or a socket path
//	if errors.Is(err, client.ErrNoNode) { ... } // nothing is listening
//	defer c.Close()
//	msg, err := c.Messages.Send(ctx, &apiv1.SendRequest{Group: "friends", Body: []byte("hi")})
//
// To send many messages fast, pipeline them over one stream with a Sender
// (NewSender): each Send returns at once and PendingSend.Wait returns once
// the message is durable.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	apiv1 "github.com/skein-p2p/skein/api/v1"
)

// SocketName is the client API socket's file name in a data directory
// (the same as core/api.SocketName).
const SocketName = "skein.sock"

// ErrNoNode: nothing listens on the socket; the error text says to start a
// node with `skein run`.
var ErrNoNode = errors.New("no skein node is running")

// Client is a connection to a node's client API.
type Client struct {
	conn *grpc.ClientConn
	// Target is the socket path or TCP address dialled.
	Target string

	Account  apiv1.AccountClient
	Contacts apiv1.ContactsClient
	Groups   apiv1.GroupsClient
	Messages apiv1.MessagesClient
	Peers    apiv1.PeersClient
	Sync     apiv1.SyncClient
	// ReplicationNode answers on a node run as a replication node.
	ReplicationNode apiv1.ReplicationNodeClient
	// Node is the running node itself (its plugins).
	Node apiv1.NodeClient
	// Devices: the account's devices (api/v1/devices.proto).
	Devices apiv1.DevicesClient
}

// SocketFor returns the socket path for target: target itself when it is a
// socket (or names a file that does not exist and ends in ".sock"), else
// target as a data directory. A leading "~/" is the home directory.
func SocketFor(target string) string {
	if target == "~" || strings.HasPrefix(target, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			target = filepath.Join(home, strings.TrimPrefix(target, "~"))
		}
	}
	if fi, err := os.Stat(target); err == nil {
		if fi.IsDir() {
			return filepath.Join(target, SocketName)
		}
		return target
	}
	if strings.HasSuffix(target, ".sock") {
		return target
	}
	return filepath.Join(target, SocketName)
}

// Dial connects to the node whose data directory or socket is target. It
// checks that a node listens, so that the error says so at once:
// ErrNoNode with "no skein node is running at <socket>: start one with
// `skein run`".
func Dial(target string) (*Client, error) {
	sock := SocketFor(target)
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("connect to the skein node at %s: permission denied (the socket belongs to the node's user)", sock)
		}
		return nil, fmt.Errorf("%w at %s: start one with `skein run`", ErrNoNode, sock)
	}
	c.Close()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to the skein node at %s: %w", sock, err)
	}
	return newClient(conn, sock), nil
}

// DialTCP connects to a node's client API on TCP, sending token as a
// bearer token on every call. The connection is not encrypted: use it on
// loopback or inside a tunnel.
func DialTCP(addr, token string) (*Client, error) {
	if token == "" {
		return nil, errors.New("dial tcp: a bearer token is required")
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: start one with `skein run` (and api.tcp set)", ErrNoNode, addr)
	}
	c.Close()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return nil, fmt.Errorf("connect to the skein node at %s: %w", addr, err)
	}
	return newClient(conn, addr), nil
}

func newClient(conn *grpc.ClientConn, target string) *Client {
	return &Client{
		conn: conn, Target: target,
		Account:         apiv1.NewAccountClient(conn),
		Contacts:        apiv1.NewContactsClient(conn),
		Groups:          apiv1.NewGroupsClient(conn),
		Messages:        apiv1.NewMessagesClient(conn),
		Peers:           apiv1.NewPeersClient(conn),
		Sync:            apiv1.NewSyncClient(conn),
		ReplicationNode: apiv1.NewReplicationNodeClient(conn),
		Node:            apiv1.NewNodeClient(conn),
		Devices:         apiv1.NewDevicesClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer sends "authorization: Bearer <token>" on every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the API's TCP listener is plain (for
// loopback and tunnels).
func (b bearer) RequireTransportSecurity() bool { return false }
