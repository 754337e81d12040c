package masking

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// FieldPlan says how to mask one field of a result row. Index is the field's
// position in the row (0-based); TypeOID and Format come from the
// RowDescription (Format as the client asked for it).
type FieldPlan struct {
	Index   int
	Method  Method // "" = no column method (only entities, if set)
	TypeOID uint32
	Format  int16
	// Entities asks for the entity detectors to run over the value when it
	// is text-like (text, varchar, bpchar, name, json, jsonb) and no Method
	// replaces it; Kinds narrows them (empty = all kinds).
	Entities bool
	Kinds    []Entity
	// Key is the HMAC key of the hash method (at least MinKeyLen bytes).
	Key []byte
}

// Validate checks a plan once, when it is built: indexes strictly
// increasing, known methods and formats, hash keys present.
func Validate(plan []FieldPlan) error {
	prev := -1
	for _, p := range plan {
		if p.Index <= prev || p.Index > 0x7FFF {
			return fmt.Errorf("%w: field indexes must be strictly increasing (got %d after %d)", ErrPlan, p.Index, prev)
		}
		prev = p.Index
		if p.Method != "" && !p.Method.Valid() {
			return fmt.Errorf("%w: field %d: %w %q", ErrPlan, p.Index, ErrMethod, p.Method)
		}
		if p.Format != FormatText && p.Format != FormatBinary {
			return fmt.Errorf("%w: field %d: %w %d", ErrPlan, p.Index, ErrFormat, p.Format)
		}
		if p.Method == Hash && len(p.Key) < MinKeyLen {
			return fmt.Errorf("%w: field %d: %w", ErrPlan, p.Index, ErrKey)
		}
	}
	return nil
}

// RewriteDataRow appends to dst the DataRow body `body` (int16 field count,
// then per field an int32 length, -1 for NULL, and the bytes) with the
// fields of plan masked, and returns the extended dst. Fields not in the
// plan are copied through. plan must satisfy Validate (indexes ascending).
// When dst has enough capacity it does not allocate, except for the hash of
// types whose canonical form needs decoding (numeric text, bytea).
//
// A malformed body, a plan index beyond the row, or a value that does not
// decode for a method that needs to read it returns an error; the caller
// must then not forward the row.
func RewriteDataRow(dst, body []byte, plan []FieldPlan) ([]byte, error) {
	if len(body) < 2 {
		return dst, ErrDataRow
	}
	count := int(int16(binary.BigEndian.Uint16(body)))
	if count < 0 {
		return dst, ErrDataRow
	}
	dst = append(dst, body[:2]...)
	p := 2
	pi := 0
	for f := 0; f < count; f++ {
		if len(body)-p < 4 {
			return dst, ErrDataRow
		}
		n := int(int32(binary.BigEndian.Uint32(body[p:])))
		fieldStart := p
		p += 4
		var val []byte
		if n >= 0 {
			if n > len(body)-p {
				return dst, ErrDataRow
			}
			val = body[p : p+n : p+n]
			p += n
		} else if n != -1 {
			return dst, ErrDataRow
		}
		if pi < len(plan) && plan[pi].Index < f {
			return dst, fmt.Errorf("%w: field indexes must be strictly increasing", ErrPlan)
		}
		if pi >= len(plan) || plan[pi].Index != f {
			dst = append(dst, body[fieldStart:p]...)
			continue
		}
		fp := &plan[pi]
		pi++
		var err error
		if dst, err = appendField(dst, fp, val); err != nil {
			return dst, fmt.Errorf("masking: field %d: %w", f, err)
		}
	}
	if p != len(body) {
		return dst, ErrDataRow
	}
	if pi < len(plan) {
		return dst, fmt.Errorf("%w: field %d is beyond the row's %d fields", ErrPlan, plan[pi].Index, count)
	}
	return dst, nil
}

// appendField appends the length word and the masked value of one field.
func appendField(dst []byte, fp *FieldPlan, val []byte) ([]byte, error) {
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	if fp.Method != "" {
		out, null, err := appendMasked(dst, fp.Method, fp.TypeOID, fp.Format, val, fp.Key)
		if err != nil {
			return out[:lenAt], err
		}
		if null {
			binary.BigEndian.PutUint32(out[lenAt:], 0xFFFFFFFF)
			return out[:lenAt+4], nil
		}
		binary.BigEndian.PutUint32(out[lenAt:], uint32(len(out)-lenAt-4))
		return out, nil
	}
	if val == nil {
		binary.BigEndian.PutUint32(dst[lenAt:], 0xFFFFFFFF)
		return dst, nil
	}
	dst = append(dst, val...)
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(val)))
	if !fp.Entities || !isTextual(fp.TypeOID) {
		return dst, nil
	}
	text := dst[lenAt+4:]
	fam := familyOf(fp.TypeOID)
	if fam == famJSONB && fp.Format == FormatBinary {
		if len(text) == 0 || text[0] != 1 {
			return dst[:lenAt], ErrValue
		}
		text = text[1:]
	}
	if maskInPlace(text, setOf(fp.Kinds)) > 0 && (fam == famJSON || fam == famJSONB) && !json.Valid(text) {
		// A match spanned JSON syntax (a card stored as a JSON number):
		// masking broke the document, so replace it whole rather than
		// send something the client cannot parse.
		dst = dst[:len(dst)-len(text)]
		dst = append(dst, `"`+redactedText+`"`...)
		binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	}
	return dst, nil
}
