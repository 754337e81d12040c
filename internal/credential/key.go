package credential

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvKey is the environment variable LoadKey reads when given no reference.
const EnvKey = "GATEHOUSE_SECRET_KEY"

// ErrNoKey is returned by LoadKey when no reference is given and EnvKey is
// unset; dev mode then falls back to LoadOrCreateKeyFile.
var ErrNoKey = errors.New("credential: no secret key configured (set " + EnvKey + ")")

// LoadKey loads the 32-byte master key named by ref:
//
//	""           the GATEHOUSE_SECRET_KEY environment variable (ErrNoKey if unset)
//	"env:NAME"   the environment variable NAME
//	"file:/path" a file holding the key
//
// Text keys are base64 (standard or URL alphabet, padded or not) or hex of 32
// bytes, surrounding whitespace ignored; a file may also hold exactly 32 raw
// bytes. A literal key in configuration is refused: it would put the key
// next to the data it protects.
func LoadKey(ref string) ([]byte, error) {
	switch {
	case ref == "":
		v, ok := os.LookupEnv(EnvKey)
		if !ok || v == "" {
			return nil, ErrNoKey
		}
		k, err := decodeKeyText(v)
		if err != nil {
			return nil, fmt.Errorf("credential: %s: %w", EnvKey, err)
		}
		return k, nil
	case strings.HasPrefix(ref, "env:"):
		name := ref[len("env:"):]
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("credential: secret key environment variable %s is not set", name)
		}
		k, err := decodeKeyText(v)
		if err != nil {
			return nil, fmt.Errorf("credential: %s: %w", name, err)
		}
		return k, nil
	case strings.HasPrefix(ref, "file:"):
		return readKeyFile(ref[len("file:"):])
	}
	return nil, errors.New(`credential: secret key reference must be "env:NAME" or "file:/path"`)
}

// LoadOrCreateKeyFile reads the key in path, or, when the file does not
// exist, generates a random key and writes it there (base64, mode 0600, the
// directory created 0700). It is meant for dev mode and single-node setups.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	k, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("credential: generate key: %w", err)
	}
	// Write a complete file under a temporary name, then link it into
	// place: link fails if the name exists, so when creators race exactly
	// one wins, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, fmt.Errorf("credential: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		return nil, fmt.Errorf("credential: %w", err)
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("credential: empty key file path")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credential: read key file: %w", err)
	}
	if len(b) == KeySize {
		// Text encodings of 32 bytes are 43+ characters, so exactly 32
		// bytes can only be a raw key.
		return b, nil
	}
	k, err := decodeKeyText(string(b))
	if err != nil {
		return nil, fmt.Errorf("credential: key file %s: %w", path, err)
	}
	return k, nil
}

// decodeKeyText accepts hex or base64 of exactly KeySize bytes.
func decodeKeyText(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("key must be %d bytes encoded as base64 or hex (generate one with: openssl rand -base64 32)", KeySize)
}

// ResolveRef resolves a secret reference: "env:NAME" reads the environment
// variable NAME (an error if unset), "file:/path" reads the file with one
// trailing newline (LF or CRLF) removed. Anything else is returned unchanged
// as a literal; whether literals are allowed is the caller's decision.
func ResolveRef(ref string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		name := ref[len("env:"):]
		if name == "" {
			return "", errors.New("credential: empty environment variable name in secret reference")
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("credential: environment variable %s is not set", name)
		}
		return v, nil
	case strings.HasPrefix(ref, "file:"):
		path := ref[len("file:"):]
		if path == "" {
			return "", errors.New("credential: empty file path in secret reference")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("credential: read secret file: %w", err)
		}
		if bytes.HasSuffix(b, []byte("\r\n")) {
			b = b[:len(b)-2]
		} else {
			b = bytes.TrimSuffix(b, []byte("\n"))
		}
		return string(b), nil
	}
	return ref, nil
}

// IsRef reports whether s is a secret reference rather than a literal.
func IsRef(s string) bool {
	return strings.HasPrefix(s, "env:") || strings.HasPrefix(s, "file:")
}
