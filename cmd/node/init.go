package main

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/crypto"
)

// Keystore layout written by `skein init`.
const (
	keystoreDirName = "keystore"
	// Secret names in the keystore.
	secretAccountSeed = "account/ed25519-seed"
	secretDeviceKey   = "device/key"
	secretDeviceCert  = "device/certificate"
)

// initResult is what `skein init` reports.
type initResult struct {
	DataDir            string `json:"data_dir"`
	Config             string `json:"config"`
	Keystore           string `json:"keystore"`
	KeystoreMode       string `json:"keystore_mode"`
	AccountKey         string `json:"account_public_key"`
	AccountFingerprint string `json:"account_fingerprint"`
	DeviceKey          string `json:"device_public_key"`
	DeviceFingerprint  string `json:"device_fingerprint"`
}

func (c *cli) initCommand() *cobra.Command {
	var (
		asJSON         bool
		passphraseFile string
		preset         string
		port           string
		link, linkName string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory with a config file, a keystore and this device's keys",
		Long: `init creates the data directory (mode 0700) with:
  skein.yaml   the config: the defaults, with node.data_dir set to "."
  keystore/    a sealed keystore holding a new account key, a new device key,
               and the account's certificate for the device

The keystore is sealed by a random key file (keystore/keystore.key, 0600)
unless --passphrase-file gives a passphrase (Argon2id). init refuses a
directory that already holds a config or a keystore.

--port N makes the node listen on port N (TCP and QUIC, WebSocket on N+1)
instead of 4001: a second node on the same machine needs other ports. With
--port any the node takes free ports at each start (its addresses then
change: peers that remembered the old ones must be told the new ones).

--preset replication writes the replication-node preset instead of the
defaults (cmd/node/presets/replication.yaml): an always-on node that stores
and serves the groups members register with it, and reads none of them.
--preset lan writes a node for a LAN without Internet (presets/lan.yaml):
it finds the other nodes on its links by mDNS and contacts nobody else.
--preset public-ipfs joins the public IPFS network (its bootstrap peers
and DHT).
--preset ble writes a node with no network at all (presets/ble.yaml): it
finds and reaches the Skein nodes its Bluetooth LE radio hears (BlueZ),
and listens on no IP address.

--link TOKEN (from skein device link on a device of your account) makes the
new node a device of that account: init starts the node, fetches the
account keys, joins every group and contact of the account, imports the
history, shows progress (--json: one JSON object per step) and stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Only the data dir matters here: no file (there is none yet).
			environ := os.Environ
			if link != "" {
				// The node init --link starts reads the whole environment
				// with the new file; plugin keys have no file to apply to yet.
				environ = withoutPluginEnv
			}
			cfg, err := config.Load(config.WithEnviron(environ), config.WithFlags(cmd.Flags(), flagKeys))
			if err != nil {
				return err
			}
			dir := cfg.Node.DataDir
			var passphrase []byte
			if passphraseFile != "" {
				passphrase, err = readPassphrase(passphraseFile)
				if err != nil {
					return err
				}
				defer clear(passphrase)
			}
			var presetYAML []byte
			if preset != "" {
				if presetYAML, err = presetConfig(preset); err != nil {
					return err
				}
			}
			var listen []string
			if port != "" {
				if preset != "" {
					return errors.New("--port applies to the default config, not to a --preset: edit the preset's listen addresses in its skein.yaml")
				}
				if listen, err = listenOnPort(port); err != nil {
					return err
				}
			}
			if link != "" {
				if err := checkLinkToken(link); err != nil {
					return err
				}
			}
			res, err := initDataDir(dir, passphrase, presetYAML, listen)
			if err != nil {
				return err
			}
			if link != "" {
				return c.linkAfterInit(cmd, link, linkName, passphrase, asJSON) // device_cmds.go
			}
			if asJSON {
				return c.writeJSON(res)
			}
			fmt.Fprintf(c.stdout, "initialised %s\n  config    %s\n  keystore  %s (%s)\n  account   %s\n  device    %s\n\nnext: skein run --data-dir %s\n",
				res.DataDir, res.Config, res.Keystore, res.KeystoreMode, res.AccountFingerprint, res.DeviceFingerprint, res.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "seal the keystore with the passphrase on the first line of this file instead of a key file")
	cmd.Flags().StringVar(&preset, "preset", "", "write a preset config instead of the defaults: "+strings.Join(presetNames(), ", "))
	cmd.Flags().StringVar(&link, "link", "", "make this node a device of an existing account, from a link token (skein device link)")
	cmd.Flags().StringVar(&linkName, "name", "", "with --link: this device's name")
	cmd.Flags().StringVar(&port, "port", "", "listen on this port (TCP and QUIC; WebSocket on the next one) instead of 4001, or \"any\" for free ports picked at each start: for a second node on one machine")
	return cmd
}

// readPassphrase reads the first line of path.
func readPassphrase(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer clear(b)
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || len(bytes.TrimSpace(sc.Bytes())) == 0 {
		return nil, fmt.Errorf("passphrase file %s: first line is empty", path)
	}
	return bytes.Clone(sc.Bytes()), nil
}

// initDataDir creates dir (0700) with a config file and a keystore holding
// a new account key, device key and device certificate. The config is the
// defaults with the network entry (listening on listen when not nil), or
// preset when not nil.
func initDataDir(dir string, passphrase, preset []byte, listen []string) (*initResult, error) {
	cfgPath := filepath.Join(dir, configFileName)
	ksDir := filepath.Join(dir, keystoreDirName)
	for _, p := range []string{cfgPath, ksDir} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("init %s: already initialised (%s exists); remove the directory to start over", dir, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; the data
	// directory holds keys, so make it private either way.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}

	var opts []crypto.KeystoreOption
	mode := "key file " + filepath.Join(ksDir, crypto.KeystoreKeyFile)
	if passphrase != nil {
		opts = append(opts, crypto.WithPassphrase(passphrase))
		mode = "passphrase"
	}
	ks, err := crypto.OpenKeystore(ksDir, opts...)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	defer ks.Close()

	account, err := crypto.GenerateSigningKey()
	if err != nil {
		return nil, fmt.Errorf("init %s: account key: %w", dir, err)
	}
	defer account.Destroy()
	device, err := crypto.GenerateDeviceKey()
	if err != nil {
		return nil, fmt.Errorf("init %s: device key: %w", dir, err)
	}
	defer device.Destroy()
	cert, err := crypto.IssueDeviceCertificate(account, device.Public(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	seed := account.Seed()
	defer clear(seed)
	deviceBytes, err := device.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("init %s: device key: %w", dir, err)
	}
	defer clear(deviceBytes)
	certBytes, err := cert.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("init %s: device certificate: %w", dir, err)
	}
	for _, s := range []struct {
		name  string
		value []byte
	}{{secretAccountSeed, seed}, {secretDeviceKey, deviceBytes}, {secretDeviceCert, certBytes}} {
		if err := ks.Put(s.name, s.value); err != nil {
			return nil, fmt.Errorf("init %s: keystore: %w", dir, err)
		}
	}

	// The config last, so a directory with a config is a finished init.
	// data_dir "." is relative to the file: the directory can be moved.
	cfgYAML := bytes.Replace(config.DefaultYAML(), []byte("  data_dir: ~/.skein\n"), []byte("  data_dir: .\n"), 1)
	if bytes.Equal(cfgYAML, config.DefaultYAML()) {
		return nil, fmt.Errorf("init %s: the embedded defaults have no data_dir line to set", dir)
	}
	entry, err := networkEntry(listen)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	cfgYAML = append(cfgYAML, entry...)
	if preset != nil {
		cfgYAML = preset
	}
	if err := os.WriteFile(cfgPath, cfgYAML, 0o600); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	return &initResult{
		DataDir:            dir,
		Config:             cfgPath,
		Keystore:           ksDir,
		KeystoreMode:       mode,
		AccountKey:         account.Public().String(),
		AccountFingerprint: account.Public().Fingerprint(),
		DeviceKey:          device.Public().Signing.String(),
		DeviceFingerprint:  device.Public().Signing.Fingerprint(),
	}, nil
}

//go:embed presets/*.yaml
var presets embed.FS

// presetNames lists the presets `skein init --preset` knows.
func presetNames() []string {
	entries, _ := presets.ReadDir("presets")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// presetConfig returns the config of the preset name.
func presetConfig(name string) ([]byte, error) {
	b, err := presets.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("--preset %q: no such preset (have: %s)", name, strings.Join(presetNames(), ", "))
	}
	return b, nil
}

// listenOnPort is the network's listen addresses for init --port: TCP and
// QUIC on port, WebSocket on the next; "any" for free ports (0).
func listenOnPort(port string) ([]string, error) {
	tcp, ws := 0, 0
	if port != "any" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65534 {
			return nil, fmt.Errorf("--port %q: want a port 1-65534 (WebSocket takes the next one) or any", port)
		}
		tcp, ws = n, n+1
	}
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", tcp),
		fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", tcp),
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d/ws", ws),
	}, nil
}
