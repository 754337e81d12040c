package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ParsePrivateKey reads an Ed25519 signing key in one of two forms:
//
//   - PEM "PRIVATE KEY" (PKCS #8), as `openssl genpkey -algorithm ed25519`
//     and `gatehouse audit keygen` write;
//   - the 32-byte seed, standard base64 (`head -c 32 /dev/urandom | base64`).
//
// Errors never contain key material.
func ParsePrivateKey(text []byte) (ed25519.PrivateKey, error) {
	text = bytes.TrimSpace(text)
	if blk, _ := pem.Decode(text); blk != nil {
		if blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("audit signing key: PEM block is %q, want \"PRIVATE KEY\" (PKCS #8 Ed25519)", blk.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("audit signing key: PEM PRIVATE KEY is not valid PKCS #8")
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("audit signing key: PEM key is %T, want Ed25519", k)
		}
		return ek, nil
	}
	seed, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit signing key: want a PEM PRIVATE KEY (Ed25519) or %d random bytes in base64", ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads an Ed25519 public key: PEM "PUBLIC KEY" (PKIX, as
// served at /api/v1/audit/public-key and written by `openssl pkey -pubout`)
// or its 32 raw bytes in standard base64.
func ParsePublicKey(text []byte) (ed25519.PublicKey, error) {
	text = bytes.TrimSpace(text)
	if blk, _ := pem.Decode(text); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("public key: PEM block is %q, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want Ed25519", k)
		}
		return ek, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: want a PEM PUBLIC KEY (Ed25519) or %d bytes in base64", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// PublicKeyPEM encodes pub as PEM "PUBLIC KEY" (PKIX).
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // cannot fail for a valid Ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PrivateKeyPEM encodes key as PEM "PRIVATE KEY" (PKCS #8).
func PrivateKeyPEM(key ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err) // cannot fail for a valid Ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// GenerateKey returns a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

// LoadOrCreateKeyFile reads the PEM signing key at path, creating it (mode
// 0600) when absent. It is for --dev mode only: a production key must live
// apart from the store it vouches for.
func LoadOrCreateKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParsePrivateKey(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	// Write a complete file under a temporary name, then link it into place:
	// link fails if the name exists, so racing creators agree on one key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(PrivateKeyPEM(key))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKeyFile(path)
		}
		return nil, err
	}
	return key, nil
}
