package ipfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// wantedPeersFile, in the data directory, remembers the peers the node was
// asked to connect to (not the bootstrap peers, which come from config),
// most recently wanted first, so that a restarted node dials them again.
const wantedPeersFile = "wanted-peers.json"

// maxWantedFileSize bounds what is read back (4096 peers × 32 addresses
// fit well within it).
const maxWantedFileSize = 16 << 20

type savedPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// LastConnected (RFC 3339) is when a connection to the peer was last
	// up; absent in files of older versions.
	LastConnected string `json:"last_connected,omitempty"`
}

// rememberedPeer is one peer of the file.
type rememberedPeer struct {
	peer.AddrInfo
	lastConnected time.Time // zero: unknown
}

type savedPeers struct {
	Version int         `json:"version"`
	Peers   []savedPeer `json:"peers"`
}

// loadWantedPeers reads the file at path. A missing file is no peers; a
// malformed one, or malformed entries, are reported and skipped, never
// fatal: the node starts without them.
func loadWantedPeers(path string) ([]rememberedPeer, []error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{err}
	}
	if len(b) > maxWantedFileSize {
		return nil, []error{fmt.Errorf("%s: %d bytes, more than %d", path, len(b), maxWantedFileSize)}
	}
	var sp savedPeers
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, []error{fmt.Errorf("%s: %w", path, err)}
	}
	if sp.Version != 1 {
		return nil, []error{fmt.Errorf("%s: unknown version %d", path, sp.Version)}
	}
	var out []rememberedPeer
	var errs []error
	for i, p := range sp.Peers {
		id, err := peer.Decode(p.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: peer %d: %w", path, i, err))
			continue
		}
		info := rememberedPeer{AddrInfo: peer.AddrInfo{ID: id}}
		if p.LastConnected != "" {
			t, err := time.Parse(time.RFC3339Nano, p.LastConnected)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: peer %d: last_connected %q: %w", path, i, p.LastConnected, err))
			} else {
				info.lastConnected = t
			}
		}
		for _, a := range p.Addrs {
			m, err := ma.NewMultiaddr(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: peer %d: address %q: %w", path, i, a, err))
				continue
			}
			info.Addrs = append(info.Addrs, m)
		}
		out = append(out, info) // want bounds the addresses
	}
	return out, errs
}

// saveWantedPeers writes peers to path atomically (a temporary file
// renamed over it), 0600.
func saveWantedPeers(path string, peers []rememberedPeer) error {
	sp := savedPeers{Version: 1, Peers: []savedPeer{}}
	for _, p := range peers {
		s := savedPeer{ID: p.ID.String(), Addrs: []string{}}
		if !p.lastConnected.IsZero() {
			s.LastConnected = p.lastConnected.UTC().Format(time.RFC3339Nano)
		}
		for _, a := range p.Addrs {
			s.Addrs = append(s.Addrs, a.String())
		}
		sp.Peers = append(sp.Peers, s)
	}
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".wanted-peers-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
