// Package chain is the tamper-evidence format of gatehouse's audit log: the
// canonical byte encoding of an event, its SHA-256 chain hash, and the
// Ed25519-signed checkpoints over a chain's head. It is written once, here,
// with golden vectors in testdata, so another implementation can verify an
// export without gatehouse's code (docs/audit.md describes the format).
//
// The package depends on nothing of gatehouse's: package audit converts its
// events to Fields.
package chain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Version tags open every encoding, so a future format can never produce
// the same bytes as this one (domain separation between events and
// checkpoints, too).
const (
	EventTag      = "gatehouse.audit.event.v1"
	CheckpointTag = "gatehouse.audit.checkpoint.v1"
)

// HashSize is the size of a chain hash (SHA-256).
const HashSize = sha256.Size

// Digest is a chain hash. Its text form (JSON) is lowercase hex; nil means
// "none" (an event written before chaining, or the genesis prev_hash).
type Digest []byte

// MarshalText renders d as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(d)))
	hex.Encode(out, d)
	return out, nil
}

// UnmarshalText reads lowercase or uppercase hex of exactly HashSize bytes
// (or nothing).
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = nil
		return nil
	}
	if len(b) != 2*HashSize {
		return fmt.Errorf("hash must be %d hex digits, got %d characters", 2*HashSize, len(b))
	}
	v := make([]byte, HashSize)
	if _, err := hex.Decode(v, b); err != nil {
		return fmt.Errorf("hash is not hex: %w", err)
	}
	*d = v
	return nil
}

// String is the hex form.
func (d Digest) String() string { return hex.EncodeToString(d) }

// Genesis is the prev_hash of a chain's first event (node_seq 1): 32 zero
// bytes.
var Genesis = Digest(make([]byte, HashSize))

// Fields are the parts of an event the chain hash covers: everything except
// the store's global seq (a paging cursor assigned after hashing). Time must
// already be in the store's precision (UTC microseconds): the encoding
// carries whole microseconds.
type Fields struct {
	Node       string
	NodeSeq    int64
	PrevHash   Digest
	Time       time.Time
	Type       string
	SessionID  string
	Issuer     string
	Subject    string
	Connection string
	Decision   string
	Reason     string
	Statement  string
	Detail     []byte
}

// appendField appends one length-prefixed field: a 4-byte big-endian length,
// then the bytes. Length prefixes make the encoding unambiguous without any
// escaping rules for another implementation to get wrong.
func appendField(b []byte, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// AppendEncoding appends the canonical encoding of f to b:
//
//	field(EventTag) field(node) field(node_seq) field(prev_hash)
//	field(time) field(type) field(session_id) field(issuer) field(subject)
//	field(connection) field(decision) field(reason) field(statement)
//	field(detail)
//
// where field(x) is x's length as 4 bytes big-endian followed by x; strings
// are their UTF-8 bytes, node_seq and time (microseconds since the Unix
// epoch, UTC) are 8-byte big-endian two's complement, prev_hash is 32 raw
// bytes, and detail is the stored JSON bytes exactly (empty when none).
func AppendEncoding(b []byte, f *Fields) []byte {
	b = appendString(b, EventTag)
	b = appendString(b, f.Node)
	b = appendInt(b, f.NodeSeq)
	b = appendField(b, f.PrevHash)
	b = appendInt(b, f.Time.UnixMicro())
	for _, s := range [...]string{f.Type, f.SessionID, f.Issuer, f.Subject, f.Connection, f.Decision, f.Reason, f.Statement} {
		b = appendString(b, s)
	}
	return appendField(b, f.Detail)
}

// Hasher computes event hashes, reusing one encoding buffer. It is not safe
// for concurrent use.
type Hasher struct{ buf []byte }

// Sum returns SHA-256 of the canonical encoding of f.
func (h *Hasher) Sum(f *Fields) Digest {
	h.buf = AppendEncoding(h.buf[:0], f)
	s := sha256.Sum256(h.buf)
	return s[:]
}

// Hash is Sum with a fresh buffer.
func Hash(f *Fields) Digest {
	var h Hasher
	return h.Sum(f)
}

// Checkpoint is a signed statement "node's chain has hash Hash at NodeSeq",
// made by the gateway every N events or T seconds and at shutdown.
type Checkpoint struct {
	ID        int64     `json:"id,omitempty"` // store-assigned paging cursor; not signed
	Node      string    `json:"node"`
	NodeSeq   int64     `json:"node_seq"`
	Hash      Digest    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`    // KeyID of the signing key; a hint, not signed
	Signature []byte    `json:"signature"` // Ed25519 over CheckpointMessage; base64 in JSON
}

// CheckpointMessage is the signed message:
//
//	field(CheckpointTag) field(node) field(node_seq) field(hash) field(time)
//
// with the same field rules as the event encoding.
func CheckpointMessage(node string, nodeSeq int64, hash Digest, t time.Time) []byte {
	b := appendString(nil, CheckpointTag)
	b = appendString(b, node)
	b = appendInt(b, nodeSeq)
	b = appendField(b, hash)
	return appendInt(b, t.UnixMicro())
}

// Sign makes a checkpoint. t is truncated to UTC microseconds, the precision
// the store keeps.
func Sign(key ed25519.PrivateKey, node string, nodeSeq int64, hash Digest, t time.Time) Checkpoint {
	t = t.UTC().Truncate(time.Microsecond)
	pub := key.Public().(ed25519.PublicKey)
	return Checkpoint{Node: node, NodeSeq: nodeSeq, Hash: hash, Time: t, KeyID: KeyID(pub),
		Signature: ed25519.Sign(key, CheckpointMessage(node, nodeSeq, hash, t))}
}

// ErrBadSignature is returned by Verify when no given key signed c.
var ErrBadSignature = errors.New("checkpoint signature does not verify")

// Verify checks c's signature against any of keys and returns the key that
// verified it.
func (c *Checkpoint) Verify(keys ...ed25519.PublicKey) (ed25519.PublicKey, error) {
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("checkpoint signature has %d bytes, want %d", len(c.Signature), ed25519.SignatureSize)
	}
	msg := CheckpointMessage(c.Node, c.NodeSeq, c.Hash, c.Time)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, c.Signature) {
			return k, nil
		}
	}
	return nil, ErrBadSignature
}

// KeyID names a public key: the first 8 bytes of SHA-256 over its 32 raw
// bytes, in hex. Checkpoints carry it so a verifier can say which key it
// needs after a key rotation.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}
