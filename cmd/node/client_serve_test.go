package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
	"github.com/skein-p2p/skein/client"
	"github.com/skein-p2p/skein/core/api"
	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/crypto"
	"github.com/skein-p2p/skein/plugins/simnet"
	"github.com/skein-p2p/skein/plugins/store/memstore"
)

func TestServeMessenger(t *testing.T) {
	ctx := context.Background()
	sn := simnet.New()
	defer sn.Close()
	nd, err := sn.AddNode("a")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func() *crypto.Keystore {
		ks, err := crypto.OpenKeystore(filepath.Join(dir, keystoreDirName))
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	logger := slog.New(slog.DiscardHandler)

	t.Run("tcp without token file", func(t *testing.T) {
		cfg := &config.Config{Node: config.Node{DataDir: dir}, API: config.API{TCP: "127.0.0.1:0"}}
		_, err := serveMessenger(ctx, cfg, open(), memstore.New(), nd, logger, nil, nil)
		if !errors.Is(err, api.ErrTokenRequired) {
			t.Fatalf("err = %v, want ErrTokenRequired", err)
		}
	})
	t.Run("socket and tcp", func(t *testing.T) {
		cfg := &config.Config{Node: config.Node{DataDir: dir}, API: config.API{TCP: "127.0.0.1:0", TokenFile: tokenFile}}
		s, err := serveMessenger(ctx, cfg, open(), memstore.New(), nd, logger, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.Account.Get(ctx, &apiv1.GetAccountRequest{})
		c.Close()
		if err != nil || a.GetPeerId() != "a" {
			t.Fatalf("account = %v, %v", a, err)
		}
		tc, err := client.DialTCP(s.srv.TCPAddr().String(), "tok-123")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Account.Get(ctx, &apiv1.GetAccountRequest{}); err != nil {
			t.Fatalf("tcp with token: %v", err)
		}
		tc.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Dial(dir); !errors.Is(err, client.ErrNoNode) {
			t.Fatalf("after stop: %v, want ErrNoNode", err)
		}
	})
}
