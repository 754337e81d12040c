package chain

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// PruneTag opens the signed message of a prune marker.
const PruneTag = "gatehouse.audit.prune.v1"

// PruneMarker is a signed statement "node's events up to NodeSeq were
// pruned (retention); the event at NodeSeq had hash Hash". It vouches for
// the prev_hash of the first remaining event (NodeSeq+1), so the rest of
// the chain stays verifiable without what was pruned.
type PruneMarker struct {
	ID        int64     `json:"id,omitempty"` // store-assigned; not signed
	Node      string    `json:"node"`
	NodeSeq   int64     `json:"node_seq"` // the last pruned node_seq
	Hash      Digest    `json:"hash"`     // its hash
	Time      time.Time `json:"time"`     // when the prune happened
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// PruneMessage is the signed message of a prune marker:
//
//	field(PruneTag) field(node) field(node_seq) field(hash) field(time)
//
// with the field rules of the event encoding. The tag differs from the
// checkpoint's, so a checkpoint signature can never pass as a marker's.
func PruneMessage(node string, nodeSeq int64, hash Digest, t time.Time) []byte {
	b := appendString(nil, PruneTag)
	b = appendString(b, node)
	b = appendInt(b, nodeSeq)
	b = appendField(b, hash)
	return appendInt(b, t.UnixMicro())
}

// SignPrune makes a prune marker; t is truncated to UTC microseconds.
func SignPrune(key ed25519.PrivateKey, node string, nodeSeq int64, hash Digest, t time.Time) PruneMarker {
	t = t.UTC().Truncate(time.Microsecond)
	pub := key.Public().(ed25519.PublicKey)
	return PruneMarker{Node: node, NodeSeq: nodeSeq, Hash: hash, Time: t, KeyID: KeyID(pub),
		Signature: ed25519.Sign(key, PruneMessage(node, nodeSeq, hash, t))}
}

// Verify checks m's signature against any of keys.
func (m *PruneMarker) Verify(keys ...ed25519.PublicKey) (ed25519.PublicKey, error) {
	if len(m.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("prune marker signature has %d bytes, want %d", len(m.Signature), ed25519.SignatureSize)
	}
	if len(m.Hash) != HashSize || m.NodeSeq <= 0 || m.Node == "" {
		return nil, fmt.Errorf("malformed prune marker")
	}
	msg := PruneMessage(m.Node, m.NodeSeq, m.Hash, m.Time)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, m.Signature) {
			return k, nil
		}
	}
	return nil, ErrBadSignature
}
