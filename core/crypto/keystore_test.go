package crypto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testArgon2 is a cheap cost for tests; production uses DefaultArgon2Params.
var testArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func openTestKeystore(tb testing.TB, dir string, opts ...KeystoreOption) *Keystore {
	tb.Helper()
	ks, err := OpenKeystore(dir, append([]KeystoreOption{WithArgon2Params(testArgon2)}, opts...)...)
	if err != nil {
		tb.Fatalf("open keystore: %v", err)
	}
	tb.Cleanup(func() { _ = ks.Close() })
	return ks
}

func TestKeystoreRoundTripAcrossReopen(t *testing.T) {
	modes := []struct {
		name string
		opts []KeystoreOption
	}{
		{"passphrase", []KeystoreOption{WithPassphrase([]byte("correct horse"))}},
		{"key file", nil},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			dev := mustDeviceKey(t)
			devBytes, _ := dev.MarshalBinary()
			_, recv := newChains(t, 0)
			_, _ = recv.KeyFor(5)
			chainState, _ := recv.MarshalBinary()
			secrets := map[string][]byte{
				"device/key":                 devBytes,
				"group/abc/secret":           bytes.Repeat([]byte{7}, 32),
				"group/abc/chain/recv/dev1":  chainState,
				"empty":                      {},
				"odd name with spaces & ...": []byte("x"),
			}
			ks := openTestKeystore(t, dir, m.opts...)
			for n, s := range secrets {
				if err := ks.Put(n, s); err != nil {
					t.Fatalf("put %s: %v", n, err)
				}
			}
			if err := ks.Put("group/abc/secret", bytes.Repeat([]byte{8}, 32)); err != nil {
				t.Fatalf("overwrite: %v", err)
			}
			secrets["group/abc/secret"] = bytes.Repeat([]byte{8}, 32)
			if err := ks.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Get("empty"); !errors.Is(err, ErrClosed) {
				t.Fatalf("get after close: got %v, want ErrClosed", err)
			}

			ks2 := openTestKeystore(t, dir, m.opts...)
			names, err := ks2.List()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for n := range secrets {
				want = append(want, n)
			}
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Fatalf("list = %q, want %q", names, want)
			}
			for n, s := range secrets {
				got, err := ks2.Get(n)
				if err != nil || !bytes.Equal(got, s) {
					t.Fatalf("get %s after reopen: %v", n, err)
				}
			}
			gotDev, _ := ks2.Get("device/key")
			back, err := ParseDeviceKey(gotDev)
			if err != nil || back.Public() != dev.Public() {
				t.Fatalf("device key after reopen: %v", err)
			}
			if err := ks2.Delete("device/key"); err != nil {
				t.Fatal(err)
			}
			if err := ks2.Delete("device/key"); err != nil {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := ks2.Get("device/key"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get deleted: got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestKeystoreWrongCredentials(t *testing.T) {
	pass := WithPassphrase([]byte("right"))
	passDir := filepath.Join(t.TempDir(), "p")
	openTestKeystore(t, passDir, pass).Close()
	fileDir := filepath.Join(t.TempDir(), "f")
	openTestKeystore(t, fileDir).Close()

	tests := []struct {
		name    string
		dir     string
		opts    []KeystoreOption
		wantErr error
	}{
		{"wrong passphrase", passDir, []KeystoreOption{WithPassphrase([]byte("wrong"))}, ErrWrongPassphrase},
		{"passphrase differs by one byte", passDir, []KeystoreOption{WithPassphrase([]byte("righT"))}, ErrWrongPassphrase},
		{"no passphrase for passphrase store", passDir, nil, ErrPassphraseRequired},
		{"passphrase for key-file store", fileDir, []KeystoreOption{pass}, ErrPassphraseNotUsed},
		{"empty passphrase", passDir, []KeystoreOption{WithPassphrase(nil)}, ErrInvalidOption},
		{"bad argon2 params", passDir, []KeystoreOption{WithArgon2Params(Argon2Params{})}, ErrInvalidOption},
		{"empty key file path", fileDir, []KeystoreOption{WithKeyFile("")}, ErrInvalidOption},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := OpenKeystore(tc.dir, tc.opts...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if ks != nil {
				t.Fatal("returned a keystore along with an error")
			}
			if err != nil && strings.Contains(err.Error(), "wrong\x00") {
				t.Fatal("error contains the passphrase")
			}
		})
	}
	// The right passphrase still works (the failures changed nothing).
	openTestKeystore(t, passDir, pass)
}

func TestKeystoreWrongKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ks")
	ks := openTestKeystore(t, dir)
	if err := ks.Put("a", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	ks.Close()
	other := RandomKey()
	if err := os.WriteFile(filepath.Join(dir, KeystoreKeyFile), other[:], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeystore(dir); !errors.Is(err, ErrWrongKeyFile) {
		t.Fatalf("got %v, want ErrWrongKeyFile", err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeystoreKeyFile), other[:31], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeystore(dir); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short key file: got %v, want ErrMalformed", err)
	}
	if err := os.Remove(filepath.Join(dir, KeystoreKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeystore(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key file: got %v, want not-exist", err)
	}
}

func TestKeystoreSeparateKeyFile(t *testing.T) {
	base := t.TempDir()
	keyFile := filepath.Join(base, "elsewhere.key")
	dir := filepath.Join(base, "ks")
	ks := openTestKeystore(t, dir, WithKeyFile(keyFile))
	if err := ks.Put("a", []byte("s")); err != nil {
		t.Fatal(err)
	}
	ks.Close()
	if _, err := os.Stat(filepath.Join(dir, KeystoreKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("default key file exists: %v", err)
	}
	ks2 := openTestKeystore(t, dir, WithKeyFile(keyFile))
	if got, err := ks2.Get("a"); err != nil || string(got) != "s" {
		t.Fatalf("get: %v", err)
	}
}

func TestKeystorePermissions(t *testing.T) {
	tests := []struct {
		name    string
		keyMode os.FileMode
		dirMode os.FileMode
		wantErr error
	}{
		{"0600 key, 0700 dir", 0o600, 0o700, nil},
		{"0400 key", 0o400, 0o700, nil},
		{"0644 key", 0o644, 0o700, ErrInsecurePermissions},
		{"0640 key", 0o640, 0o700, ErrInsecurePermissions},
		{"0604 key", 0o604, 0o700, ErrInsecurePermissions},
		{"0700 key", 0o700, 0o700, ErrInsecurePermissions},
		{"0755 dir", 0o600, 0o755, ErrInsecurePermissions},
		{"0750 dir", 0o600, 0o750, ErrInsecurePermissions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ks")
			openTestKeystore(t, dir).Close()
			if err := os.Chmod(filepath.Join(dir, KeystoreKeyFile), tc.keyMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			ks, err := OpenKeystore(dir)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				ks.Close()
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestKeystoreAtRest(t *testing.T) {
	for _, opts := range [][]KeystoreOption{{WithPassphrase([]byte("pw"))}, nil} {
		dir := filepath.Join(t.TempDir(), "ks")
		ks := openTestKeystore(t, dir, opts...)
		secret := []byte("THIS-IS-A-VERY-SECRET-GROUP-KEY!")
		if err := ks.Put("group/x", secret); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("dir mode %#o, want 0700", st.Mode().Perm())
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			info, _ := e.Info()
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %#o, want 0600", e.Name(), info.Mode().Perm())
			}
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Errorf("temporary file left behind: %s", e.Name())
			}
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, secret) || bytes.Contains(b, []byte("group/x")) {
				t.Errorf("%s holds the secret or its name in clear", e.Name())
			}
		}
	}
}

func TestKeystoreTampering(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ks")
	ks := openTestKeystore(t, dir)
	if err := ks.Put("a", []byte("secret a")); err != nil {
		t.Fatal(err)
	}
	if err := ks.Put("b", []byte("secret b")); err != nil {
		t.Fatal(err)
	}
	pa, pb := ks.path("a"), ks.path("b")
	orig, _ := os.ReadFile(pa)

	t.Run("files swapped between names", func(t *testing.T) {
		bb, _ := os.ReadFile(pb)
		if err := os.WriteFile(pa, bb, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Get("a"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("got %v, want ErrDecrypt", err)
		}
	})
	t.Run("flipped byte", func(t *testing.T) {
		c := bytes.Clone(orig)
		c[len(c)/2] ^= 1
		if err := os.WriteFile(pa, c, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Get("a"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("got %v, want ErrDecrypt", err)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		if err := os.WriteFile(pa, []byte{9}, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Get("a"); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("corrupt meta", func(t *testing.T) {
		ks.Close()
		meta := filepath.Join(dir, KeystoreMetaFile)
		m, _ := os.ReadFile(meta)
		for name, bad := range map[string][]byte{
			"empty": {}, "magic": append([]byte("XXXX"), m[4:]...),
			"version": append(append(bytes.Clone(m[:4]), 9), m[5:]...),
			"mode":    append(append(bytes.Clone(m[:5]), 9), m[6:]...),
			"short":   m[:len(m)-1],
		} {
			if err := os.WriteFile(meta, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenKeystore(dir); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: got %v, want ErrMalformed", name, err)
			}
		}
		wrapped := bytes.Clone(m)
		wrapped[len(wrapped)-1] ^= 1
		if err := os.WriteFile(meta, wrapped, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeystore(dir); !errors.Is(err, ErrWrongKeyFile) {
			t.Errorf("tampered wrapped key: got %v, want ErrWrongKeyFile", err)
		}
		if err := os.Remove(meta); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeystore(dir); !errors.Is(err, ErrMalformed) {
			t.Errorf("missing meta with secrets present: got %v, want ErrMalformed", err)
		}
	})
}

func TestKeystoreArgon2ParamsStored(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ks")
	pass := WithPassphrase([]byte("pw"))
	ks := openTestKeystore(t, dir, pass)
	if err := ks.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	ks.Close()
	// Reopening with other (even default) params uses the stored ones.
	ks2 := openTestKeystore(t, dir, pass, WithArgon2Params(Argon2Params{Time: 2, MemoryKiB: 128, Threads: 2}))
	if got, err := ks2.Get("a"); err != nil || string(got) != "1" {
		t.Fatalf("get: %v", err)
	}
	// Inflated cost in the header is refused rather than run.
	ks2.Close()
	meta := filepath.Join(dir, KeystoreMetaFile)
	m, _ := os.ReadFile(meta)
	copy(m[10:14], []byte{0xff, 0xff, 0xff, 0xff})
	if err := os.WriteFile(meta, m, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeystore(dir, pass); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge memory cost: got %v, want ErrMalformed", err)
	}
}

func TestKeystoreNames(t *testing.T) {
	ks := openTestKeystore(t, filepath.Join(t.TempDir(), "ks"))
	tests := []struct {
		name    string
		key     string
		wantErr error
	}{
		{"empty", "", ErrInvalidName},
		{"too long", strings.Repeat("n", MaxSecretNameLen+1), ErrInvalidName},
		{"control byte", "a\nb", ErrInvalidName},
		{"non-ascii", "clé", ErrInvalidName},
		{"longest", strings.Repeat("n", MaxSecretNameLen), nil},
		{"path-like", "../../etc/passwd", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ks.Put(tc.key, []byte("v"))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("put: %v", err)
				}
				if got, err := ks.Get(tc.key); err != nil || string(got) != "v" {
					t.Fatalf("get: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("put: got %v, want %v", err, tc.wantErr)
			}
			if _, err := ks.Get(tc.key); !errors.Is(err, tc.wantErr) {
				t.Fatalf("get: got %v, want %v", err, tc.wantErr)
			}
			if err := ks.Delete(tc.key); !errors.Is(err, tc.wantErr) {
				t.Fatalf("delete: got %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := ks.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: got %v, want ErrNotFound", err)
	}
	if err := ks.Put("big", make([]byte, MaxSecretSize+1)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("oversized secret: got %v, want ErrInvalidOption", err)
	}
	// Files that are not keystore entries are ignored by List.
	if err := os.WriteFile(filepath.Join(ks.Dir(), "zz.secret"), []byte{1}, 0o600); err != nil {
		t.Fatal(err)
	}
	names, err := ks.List()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "\xfa") || len(names) != 2 {
		t.Fatalf("list = %q", names)
	}
}

func TestKeystoreOversizedEntryFile(t *testing.T) {
	ks := openTestKeystore(t, filepath.Join(t.TempDir(), "ks"))
	if err := os.WriteFile(ks.path("big"), make([]byte, 1+SealOverhead+MaxSecretSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get("big"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}
