package credential

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadKeyEncodings(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{
		"hex":        hex.EncodeToString(key),
		"HEX":        strings.ToUpper(hex.EncodeToString(key)),
		"std":        base64.StdEncoding.EncodeToString(key),
		"raw std":    base64.RawStdEncoding.EncodeToString(key),
		"url":        base64.URLEncoding.EncodeToString(key),
		"newline":    base64.StdEncoding.EncodeToString(key) + "\n",
		"whitespace": "  " + hex.EncodeToString(key) + " \r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(EnvKey, text)
			got, err := LoadKey("")
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("LoadKey(\"\") = %x, %v", got, err)
			}
			t.Setenv("MY_KEY", text)
			got, err = LoadKey("env:MY_KEY")
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("LoadKey(env:) = %x, %v", got, err)
			}
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err = LoadKey("file:" + p)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("LoadKey(file:) = %x, %v", got, err)
			}
		})
	}
	// Raw bytes in a file, including bytes that look like whitespace.
	raw := bytes.Repeat([]byte{'\n'}, KeySize)
	p := filepath.Join(dir, "raw")
	os.WriteFile(p, raw, 0o600)
	if got, err := LoadKey("file:" + p); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("raw file: %x, %v", got, err)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	t.Setenv(EnvKey, "")
	if _, err := LoadKey(""); !errors.Is(err, ErrNoKey) {
		t.Errorf("unset: err = %v, want ErrNoKey", err)
	}
	t.Setenv(EnvKey, base64.StdEncoding.EncodeToString(make([]byte, 16)))
	if _, err := LoadKey(""); err == nil || errors.Is(err, ErrNoKey) {
		t.Errorf("short key: err = %v", err)
	}
	t.Setenv(EnvKey, "not a key at all")
	_, err := LoadKey("")
	if err == nil || strings.Contains(err.Error(), "not a key at all") {
		t.Errorf("bad key: err = %v (must not echo the value)", err)
	}
	if _, err := LoadKey("env:GATEHOUSE_TEST_SURELY_UNSET"); err == nil {
		t.Error("unset env: no error")
	}
	if _, err := LoadKey("file:" + filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
	if _, err := LoadKey(hex.EncodeToString(make([]byte, KeySize))); err == nil {
		t.Error("literal key accepted")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, err := LoadOrCreateKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeySize || bytes.Equal(k1, make([]byte, KeySize)) {
		t.Fatalf("bad generated key %x", k1)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(p)); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKeyFile(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load = %x, %v; want the same key", k2, err)
	}
	if k3, err := LoadKey("file:" + p); err != nil || !bytes.Equal(k1, k3) {
		t.Fatalf("LoadKey(file:) = %x, %v", k3, err)
	}
}

func TestLoadOrCreateKeyFileRace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKeyFile(p)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent creators got different keys")
		}
	}
}

func TestResolveRef(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("GH_TEST_PW", "from-env\n")
	t.Setenv("GH_TEST_EMPTY", "")
	cases := []struct{ ref, want string }{
		{"literal", "literal"},
		{"", ""},
		{"envx:FOO", "envx:FOO"},
		{"env:GH_TEST_PW", "from-env\n"},
		{"env:GH_TEST_EMPTY", ""},
		{"file:" + write("a", "pw\n"), "pw"},
		{"file:" + write("b", "pw\n\n"), "pw\n"},
		{"file:" + write("c", "pw\r\n"), "pw"},
		{"file:" + write("d", "pw"), "pw"},
		{"file:" + write("e", " pw \r"), " pw \r"},
	}
	for _, c := range cases {
		got, err := ResolveRef(c.ref)
		if err != nil || got != c.want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q", c.ref, got, err, c.want)
		}
	}
	for _, ref := range []string{"env:", "file:", "env:GH_TEST_SURELY_UNSET", "file:" + filepath.Join(dir, "missing")} {
		if _, err := ResolveRef(ref); err == nil {
			t.Errorf("ResolveRef(%q): no error", ref)
		}
	}
	if !IsRef("env:X") || !IsRef("file:/x") || IsRef("x") {
		t.Error("IsRef")
	}
}

// FuzzDecodeKeyText checks the key parser never panics and only ever
// yields keys of exactly KeySize bytes.
func FuzzDecodeKeyText(f *testing.F) {
	f.Add(hex.EncodeToString(make([]byte, KeySize)))
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, KeySize)) + "\n")
	f.Add(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, KeySize)))
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := decodeKeyText(s)
		if err == nil && len(k) != KeySize {
			t.Fatalf("decoded a %d-byte key from %q", len(k), s)
		}
		if err != nil && strings.Contains(err.Error(), s) && len(s) > 8 {
			t.Fatalf("error echoes the input: %v", err)
		}
	})
}
