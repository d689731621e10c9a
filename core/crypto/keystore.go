package crypto

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Keystore file names and limits.
const (
	// KeystoreMetaFile holds the keystore header and the wrapped master key.
	KeystoreMetaFile = "keystore.meta"
	// KeystoreKeyFile is the default key file (key-file mode), inside the
	// keystore directory unless WithKeyFile names another path.
	KeystoreKeyFile = "keystore.key"
	// MaxSecretNameLen is the longest secret name (bytes).
	MaxSecretNameLen = 120
	// MaxSecretSize is the largest secret Put accepts.
	MaxSecretSize = 1 << 20

	secretSuffix     = ".secret"
	keystoreMagic    = "SKKS"
	keystoreVersion  = 1
	modePassphrase   = 1
	modeKeyFile      = 2
	saltSize         = 16
	wrappedKeySize   = SealOverhead + KeySize
	secretFileHeader = 1
	wrapAD           = "skein/v1/keystore-master\x00"
	entryAD          = "skein/v1/keystore-entry\x00"
)

// Argon2Params are the Argon2id cost parameters of a passphrase keystore.
// They are chosen when the keystore is created and stored in its header.
type Argon2Params struct {
	// Time is the number of passes (>= 1).
	Time uint32
	// MemoryKiB is the memory cost in KiB (>= 8*Threads, <= 4 GiB).
	MemoryKiB uint32
	// Threads is the parallelism (>= 1).
	Threads uint8
}

// DefaultArgon2Params returns the default cost: Argon2id with 3 passes,
// 64 MiB and 4 lanes (RFC 9106's second recommended setting), about
// 0.1-0.2 s on a current core.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
}

const maxArgon2MemoryKiB = 4 << 20 // 4 GiB
const maxArgon2Time = 64

func (p Argon2Params) validate() error {
	if p.Time < 1 || p.Time > maxArgon2Time || p.Threads < 1 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgon2MemoryKiB {
		return fmt.Errorf("argon2 params time=%d memory=%dKiB threads=%d: %w",
			p.Time, p.MemoryKiB, p.Threads, ErrInvalidOption)
	}
	return nil
}

// KeystoreOption configures OpenKeystore.
type KeystoreOption func(*keystoreConfig) error

type keystoreConfig struct {
	passphrase []byte
	params     Argon2Params
	keyFile    string
}

// WithPassphrase opens (or creates) the keystore in passphrase mode. The
// passphrase must not be empty; it is copied and the copy zeroed once the key
// is derived.
func WithPassphrase(passphrase []byte) KeystoreOption {
	return func(c *keystoreConfig) error {
		if len(passphrase) == 0 {
			return fmt.Errorf("passphrase: %w: empty (omit WithPassphrase for key-file mode)", ErrInvalidOption)
		}
		c.passphrase = append([]byte(nil), passphrase...)
		return nil
	}
}

// WithArgon2Params sets the Argon2id cost used when a passphrase keystore is
// created (tests lower it). Opening an existing keystore always uses the
// parameters stored in it.
func WithArgon2Params(p Argon2Params) KeystoreOption {
	return func(c *keystoreConfig) error {
		if err := p.validate(); err != nil {
			return err
		}
		c.params = p
		return nil
	}
}

// WithKeyFile sets where the key file of a key-file-mode keystore lives
// (default: KeystoreKeyFile inside the keystore directory). Keeping it on
// another volume means a copy of the directory alone reveals nothing.
func WithKeyFile(path string) KeystoreOption {
	return func(c *keystoreConfig) error {
		if path == "" {
			return fmt.Errorf("key file: %w: empty path", ErrInvalidOption)
		}
		c.keyFile = path
		return nil
	}
}

// Keystore keeps secrets (private keys, group secrets, ratchet states) in a
// directory, each sealed with XChaCha20-Poly1305 under a random master key.
// The master key is itself sealed under a key encryption key: Argon2id of a
// passphrase, or the contents of a random 32-byte key file (mode 0600).
//
// Layout (directory mode 0700, files 0600, writes atomic by temp+rename):
//
//	keystore.meta          header + wrapped master key
//	keystore.key           key-file mode only (unless WithKeyFile)
//	<hex(name)>.secret     0x01 || Seal(master, secret, "skein/v1/keystore-entry" || 0x00 || name)
//
// A secret is bound to its name, so files swapped between names fail to open.
// Keystore is safe for concurrent use within one process; two processes must
// not open the same directory at once.
type Keystore struct {
	mu     sync.Mutex
	dir    string
	master *[KeySize]byte // nil once closed
}

// OpenKeystore opens the keystore in dir, creating it (and dir, mode 0700) if
// it has no keystore.meta yet. With WithPassphrase the keystore is in
// passphrase mode, otherwise in key-file mode. Errors: ErrWrongPassphrase,
// ErrWrongKeyFile, ErrPassphraseRequired, ErrPassphraseNotUsed,
// ErrInsecurePermissions (directory wider than 0700 or key file wider than
// 0600), ErrMalformed (corrupt header).
func OpenKeystore(dir string, opts ...KeystoreOption) (*Keystore, error) {
	cfg := keystoreConfig{params: DefaultArgon2Params()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("open keystore %s: %w", dir, err)
		}
	}
	defer clear(cfg.passphrase)
	if cfg.keyFile == "" {
		cfg.keyFile = filepath.Join(dir, KeystoreKeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keystore %s: %w", dir, err)
	}
	if err := checkPerm(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keystore: %w", err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, KeystoreMetaFile))
	var master *[KeySize]byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
		master, err = createKeystore(dir, &cfg)
	case err != nil:
		return nil, fmt.Errorf("open keystore %s: %w", dir, err)
	default:
		master, err = unlockKeystore(meta, &cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open keystore %s: %w", dir, err)
	}
	return &Keystore{dir: dir, master: master}, nil
}

func createKeystore(dir string, cfg *keystoreConfig) (*[KeySize]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), secretSuffix) {
			return nil, fmt.Errorf("%w: %s missing but secrets present", ErrMalformed, KeystoreMetaFile)
		}
	}
	header := []byte(keystoreMagic)
	header = append(header, keystoreVersion)
	var kek [KeySize]byte
	if cfg.passphrase != nil {
		salt := RandomKey()
		header = append(header, modePassphrase)
		header = binary.BigEndian.AppendUint32(header, cfg.params.Time)
		header = binary.BigEndian.AppendUint32(header, cfg.params.MemoryKiB)
		header = append(header, cfg.params.Threads)
		header = append(header, salt[:saltSize]...)
		kek = deriveKEK(cfg.passphrase, salt[:saltSize], cfg.params)
	} else {
		header = append(header, modeKeyFile)
		kek = RandomKey()
		if _, err := os.Stat(cfg.keyFile); err == nil {
			return nil, fmt.Errorf("key file %s already exists; refusing to overwrite it", cfg.keyFile)
		}
		if err := writeFileAtomic(cfg.keyFile, kek[:]); err != nil {
			return nil, fmt.Errorf("write key file: %w", err)
		}
	}
	defer clear(kek[:])
	master := new([KeySize]byte)
	*master = RandomKey()
	wrapped, err := Seal(&kek, master[:], append([]byte(wrapAD), header...))
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, KeystoreMetaFile), append(header, wrapped...)); err != nil {
		return nil, fmt.Errorf("write %s: %w", KeystoreMetaFile, err)
	}
	return master, nil
}

func unlockKeystore(meta []byte, cfg *keystoreConfig) (*[KeySize]byte, error) {
	bad := func(why string) error { return fmt.Errorf("%s: %w: %s", KeystoreMetaFile, ErrMalformed, why) }
	if len(meta) < len(keystoreMagic)+2 || string(meta[:4]) != keystoreMagic {
		return nil, bad("not a keystore header")
	}
	if meta[4] != keystoreVersion {
		return nil, bad(fmt.Sprintf("version %d", meta[4]))
	}
	var kek [KeySize]byte
	defer clear(kek[:])
	var header []byte
	wrongKey := ErrWrongPassphrase
	switch meta[5] {
	case modePassphrase:
		const hl = 6 + 4 + 4 + 1 + saltSize
		if len(meta) != hl+wrappedKeySize {
			return nil, bad("length")
		}
		if cfg.passphrase == nil {
			return nil, ErrPassphraseRequired
		}
		p := Argon2Params{
			Time:      binary.BigEndian.Uint32(meta[6:10]),
			MemoryKiB: binary.BigEndian.Uint32(meta[10:14]),
			Threads:   meta[14],
		}
		if p.validate() != nil {
			return nil, bad("argon2 parameters out of range")
		}
		header = meta[:hl]
		kek = deriveKEK(cfg.passphrase, meta[15:hl], p)
	case modeKeyFile:
		if len(meta) != 6+wrappedKeySize {
			return nil, bad("length")
		}
		if cfg.passphrase != nil {
			return nil, ErrPassphraseNotUsed
		}
		if err := checkPerm(cfg.keyFile, 0o600); err != nil {
			return nil, err
		}
		k, err := os.ReadFile(cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read key file: %w", err)
		}
		if len(k) != KeySize {
			clear(k)
			return nil, fmt.Errorf("key file %s: %w: length %d, want %d", cfg.keyFile, ErrMalformed, len(k), KeySize)
		}
		copy(kek[:], k)
		clear(k)
		header = meta[:6]
		wrongKey = ErrWrongKeyFile
	default:
		return nil, bad(fmt.Sprintf("mode %d", meta[5]))
	}
	m, err := Open(&kek, meta[len(header):], append([]byte(wrapAD), header...))
	if err != nil {
		return nil, wrongKey
	}
	master := new([KeySize]byte)
	copy(master[:], m)
	clear(m)
	return master, nil
}

func deriveKEK(passphrase, salt []byte, p Argon2Params) [KeySize]byte {
	var kek [KeySize]byte
	k := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	copy(kek[:], k)
	clear(k)
	return kek
}

// Put stores secret under name, replacing any previous value atomically.
// The secret is copied; the caller may zero it afterwards.
func (k *Keystore) Put(name string, secret []byte) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("keystore put: %w", err)
	}
	if len(secret) > MaxSecretSize {
		return fmt.Errorf("keystore put %s: %w: secret of %d bytes exceeds %d", name, ErrInvalidOption, len(secret), MaxSecretSize)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return fmt.Errorf("keystore put %s: %w", name, ErrClosed)
	}
	sealed, err := Seal(k.master, secret, entryADFor(name))
	if err != nil {
		return fmt.Errorf("keystore put %s: %w", name, err)
	}
	data := append([]byte{secretFileHeader}, sealed...)
	if err := writeFileAtomic(k.path(name), data); err != nil {
		return fmt.Errorf("keystore put %s: %w", name, err)
	}
	return nil
}

// Get returns the secret stored under name (a fresh copy the caller should
// zero when done), ErrNotFound if there is none, or ErrDecrypt/ErrMalformed
// if its file was tampered with or belongs to another name.
func (k *Keystore) Get(name string) ([]byte, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("keystore get: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return nil, fmt.Errorf("keystore get %s: %w", name, ErrClosed)
	}
	data, err := readFileMax(k.path(name), 1+SealOverhead+MaxSecretSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore get %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore get %s: %w", name, err)
	}
	if len(data) < 1 || data[0] != secretFileHeader {
		return nil, fmt.Errorf("keystore get %s: %w: bad header", name, ErrMalformed)
	}
	secret, err := Open(k.master, data[1:], entryADFor(name))
	if err != nil {
		return nil, fmt.Errorf("keystore get %s: %w", name, err)
	}
	if secret == nil {
		secret = []byte{}
	}
	return secret, nil
}

// Delete removes the secret stored under name. Deleting a missing name is
// not an error.
func (k *Keystore) Delete(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("keystore delete: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return fmt.Errorf("keystore delete %s: %w", name, ErrClosed)
	}
	if err := os.Remove(k.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keystore delete %s: %w", name, err)
	}
	if err := syncDir(k.dir); err != nil {
		return fmt.Errorf("keystore delete %s: %w", name, err)
	}
	return nil
}

// List returns the names of all stored secrets, sorted.
func (k *Keystore) List() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil {
		return nil, fmt.Errorf("keystore list: %w", ErrClosed)
	}
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, fmt.Errorf("keystore list: %w", err)
	}
	var names []string
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), secretSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := hex.DecodeString(base)
		if err != nil || validName(string(n)) != nil || hex.EncodeToString(n) != base {
			continue // not one of ours
		}
		names = append(names, string(n))
	}
	sort.Strings(names)
	return names, nil
}

// Close zeroes the master key. Later calls fail with ErrClosed. Close is
// idempotent.
func (k *Keystore) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master != nil {
		clear(k.master[:])
		k.master = nil
	}
	return nil
}

// Dir returns the keystore directory.
func (k *Keystore) Dir() string { return k.dir }

// String names the directory only.
func (k *Keystore) String() string { return "Keystore(" + k.dir + ")" }

// GoString is the same as String.
func (k *Keystore) GoString() string { return k.String() }

// Format prints String for every verb.
func (k *Keystore) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

func (k *Keystore) path(name string) string {
	return filepath.Join(k.dir, hex.EncodeToString([]byte(name))+secretSuffix)
}

func entryADFor(name string) []byte {
	return append([]byte(entryAD), name...)
}

// validName accepts 1..MaxSecretNameLen bytes of printable ASCII.
func validName(name string) error {
	if len(name) == 0 || len(name) > MaxSecretNameLen {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrInvalidName, len(name), MaxSecretNameLen)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return fmt.Errorf("%w: byte %d is not printable ASCII", ErrInvalidName, i)
		}
	}
	return nil
}

// checkPerm fails with ErrInsecurePermissions if path grants group or other
// any permission (mode wider than max, which is 0600 or 0700).
func checkPerm(path string, max fs.FileMode) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&^max != 0 {
		return fmt.Errorf("%s has mode %#o, want at most %#o (chmod %o %s): %w",
			path, perm, max, max, path, ErrInsecurePermissions)
	}
	return nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file
// in the same directory, fsync and rename, then fsyncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// readFileMax reads a file, failing with ErrMalformed if it is larger than max.
func readFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrMalformed, max)
	}
	return data, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
