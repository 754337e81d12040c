// Package credential keeps upstream secrets encrypted at rest and resolves
// secret references.
//
// A Box seals secrets with AES-256-GCM under a 32-byte master key. Every
// ciphertext carries a version byte and a key id, so a wrong key is reported
// as such rather than as corruption, and is bound to caller-supplied
// associated data (the connection name), so a ciphertext copied into another
// row fails to open instead of handing one connection's password to another.
//
// Secret references ("env:NAME", "file:/path") let configuration name a
// secret without containing it; ResolveRef turns a reference into its value.
package credential

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Format of a sealed secret:
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | AES-GCM ciphertext+tag
//
// The version byte and key id are part of the GCM associated data together
// with the caller's context, so neither can be altered undetected.
const (
	version1   byte = 1
	keyIDSize       = 4
	nonceSize       = 12
	headerSize      = 1 + keyIDSize + nonceSize
	tagSize         = 16
	// KeySize is the master key length: AES-256.
	KeySize = 32
)

var (
	// ErrWrongKey means the secret was sealed under a different master key.
	ErrWrongKey = errors.New("secret was encrypted with a different key")
	// ErrCorrupt means the ciphertext is malformed or failed authentication
	// (tampered with, truncated, or opened with the wrong associated data).
	ErrCorrupt = errors.New("secret is corrupted or does not belong to this record")
)

// Box seals and opens secrets under one master key. It is safe for
// concurrent use.
type Box struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
}

// NewBox returns a Box for a 32-byte key. The key is not retained beyond the
// AES key schedule.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("credential: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	b := &Box{aead: aead}
	b.keyID = KeyID(key)
	return b, nil
}

// KeyID is the public identifier of a key: the first 4 bytes of its SHA-256.
// It tells keys apart in error messages without revealing them.
func KeyID(key []byte) [keyIDSize]byte {
	sum := sha256.Sum256(key)
	var id [keyIDSize]byte
	copy(id[:], sum[:keyIDSize])
	return id
}

// KeyID returns the hex id of the Box's key.
func (b *Box) KeyID() string { return hex.EncodeToString(b.keyID[:]) }

// Seal encrypts plaintext bound to aad (for example the connection name).
// Each call uses a fresh random nonce, so sealing the same value twice gives
// different ciphertexts.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("credential: nonce: %w", err)
	}
	return b.seal(plaintext, aad, nonce), nil
}

// seal is Seal with the nonce given; tests use it for deterministic output.
func (b *Box) seal(plaintext, aad []byte, nonce [nonceSize]byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = version1
	copy(out[1:], b.keyID[:])
	copy(out[1+keyIDSize:], nonce[:])
	return b.aead.Seal(out, nonce[:], plaintext, b.additional(out[:1+keyIDSize], aad))
}

// Open decrypts a ciphertext produced by Seal with the same aad. It reports
// ErrWrongKey when the ciphertext names another key and ErrCorrupt for
// anything that fails to authenticate.
func (b *Box) Open(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < 1 {
		return nil, fmt.Errorf("credential: %w: empty", ErrCorrupt)
	}
	if ciphertext[0] != version1 {
		return nil, fmt.Errorf("credential: %w: unknown format version %d", ErrCorrupt, ciphertext[0])
	}
	if len(ciphertext) < headerSize+tagSize {
		return nil, fmt.Errorf("credential: %w: too short (%d bytes)", ErrCorrupt, len(ciphertext))
	}
	if id := ciphertext[1 : 1+keyIDSize]; !bytes.Equal(id, b.keyID[:]) {
		return nil, fmt.Errorf("credential: %w (key id %x, current key id %x)", ErrWrongKey, id, b.keyID[:])
	}
	nonce := ciphertext[1+keyIDSize : headerSize]
	pt, err := b.aead.Open(nil, nonce, ciphertext[headerSize:], b.additional(ciphertext[:1+keyIDSize], aad))
	if err != nil {
		return nil, fmt.Errorf("credential: %w", ErrCorrupt)
	}
	return pt, nil
}

// additional builds the GCM associated data: the header, then the caller's
// context. The header has a fixed length, so the concatenation is unambiguous.
func (b *Box) additional(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}
