package masking

import (
	"fmt"
	"sync"
	"unsafe"
)

// Entity is a kind of sensitive value the detectors find in free text, as
// named in policy files (masking.entities).
type Entity string

// The entity kinds.
const (
	CreditCard Entity = "credit_card" // 13–19 digits, Luhn-valid, known IIN range
	Email      Entity = "email"
	Phone      Entity = "phone"  // confirmed with libphonenumber metadata
	USSSN      Entity = "us_ssn" // formatted 123-45-6789, or 9 digits after "SSN"
	IBAN       Entity = "iban"   // country length + mod-97
	IPAddress  Entity = "ip"     // IPv4 and IPv6
	JWT        Entity = "jwt"
	Secret     Entity = "secret" // API keys, tokens, private keys, secret=… assignments
)

var allEntities = []Entity{CreditCard, Email, Phone, USSSN, IBAN, IPAddress, JWT, Secret}

// AllEntities returns every entity kind.
func AllEntities() []Entity { return append([]Entity(nil), allEntities...) }

// ParseEntity validates an entity name from configuration.
func ParseEntity(s string) (Entity, error) {
	for _, e := range allEntities {
		if string(e) == s {
			return e, nil
		}
	}
	return "", fmt.Errorf("masking: unknown entity %q (known: credit_card, email, phone, us_ssn, iban, ip, jwt, secret)", s)
}

// Match is one entity found in a text: text[Start:End] (byte offsets).
type Match struct {
	Kind       Entity
	Start, End int
}

type kindSet uint16

func (k kindSet) has(e kindSet) bool { return k&e != 0 }

const (
	kCard kindSet = 1 << iota
	kEmail
	kPhone
	kSSN
	kIBAN
	kIP
	kJWT
	kSecret
	kAll = kCard | kEmail | kPhone | kSSN | kIBAN | kIP | kJWT | kSecret
)

func kindBit(e Entity) kindSet {
	// By first byte, then exact: this runs for every masked text value.
	if len(e) < 2 {
		return 0
	}
	var k Entity
	var bit kindSet
	switch e[0] {
	case 'c':
		k, bit = CreditCard, kCard
	case 'e':
		k, bit = Email, kEmail
	case 'p':
		k, bit = Phone, kPhone
	case 'u':
		k, bit = USSSN, kSSN
	case 'i':
		if e[1] == 'p' {
			k, bit = IPAddress, kIP
		} else {
			k, bit = IBAN, kIBAN
		}
	case 'j':
		k, bit = JWT, kJWT
	case 's':
		k, bit = Secret, kSecret
	}
	if e != k {
		return 0
	}
	return bit
}

// setOf turns a kinds list into a bit set; an empty list means every kind
// (scanning for more than asked is the safe side of a mistake).
func setOf(kinds []Entity) kindSet {
	if len(kinds) == 0 {
		return kAll
	}
	var s kindSet
	for _, k := range kinds {
		s |= kindBit(k)
	}
	return s
}

// Detect returns the entities of the given kinds (all when kinds is empty)
// found in text, ordered by position and not overlapping. It runs in time
// linear in len(text): one pass with bounded look-behind at trigger bytes
// ('@', ':', '=', digits, token prefixes), and a libphonenumber check only
// for phone-shaped candidates.
func Detect(text string, kinds []Entity) []Match {
	return detect(text, setOf(kinds), nil)
}

// MaskEntities replaces each entity found in text with a mask of the same
// length (see README.md: cards and SSNs keep their last four digits, e-mail
// addresses their domain, IBANs their country and last four) and reports how
// many it masked. A text without entities is returned as is.
func MaskEntities(text string, kinds []Entity) (string, int) {
	buf := matchPool.Get().(*[]Match)
	defer matchPool.Put(buf)
	ms := detect(text, setOf(kinds), (*buf)[:0])
	*buf = ms[:0]
	if len(ms) == 0 {
		return text, 0
	}
	b := []byte(text)
	for _, m := range ms {
		maskMatch(b, m)
	}
	// b is not written again and nothing else refers to it: hand it out
	// as the string instead of copying it a second time.
	return unsafe.String(unsafe.SliceData(b), len(b)), len(ms)
}

// MaskEntitiesInPlace masks the entities found in b, in place (masks keep
// the length), and reports how many it masked. Match buffers are pooled, so
// it does not allocate in the steady state.
func MaskEntitiesInPlace(b []byte, kinds []Entity) int {
	return maskInPlace(b, setOf(kinds))
}

// matchPool holds match slices for MaskEntities and MaskEntitiesInPlace.
var matchPool = sync.Pool{New: func() any { s := make([]Match, 0, 16); return &s }}

func maskInPlace(b []byte, set kindSet) int {
	if len(b) == 0 {
		return 0
	}
	buf := matchPool.Get().(*[]Match)
	defer matchPool.Put(buf)
	// The scan reads b through a string header and finishes before b is
	// written, and nothing keeps the string: the usual zero-copy view.
	ms := detect(unsafe.String(unsafe.SliceData(b), len(b)), set, (*buf)[:0])
	*buf = ms[:0]
	for _, m := range ms {
		maskMatch(b, m)
	}
	return len(ms)
}

// maskMatch overwrites the letters and digits of one match with '*',
// keeping separators (so JSON strings stay strings and lengths stay put) and
// the part that identifies the kind without revealing the value.
func maskMatch(b []byte, m Match) {
	keepHead, keepTail := 0, 0
	start, end := m.Start, m.End
	switch m.Kind {
	case CreditCard, USSSN:
		keepTail = 4
	case Phone:
		keepTail = 2
	case IBAN:
		keepHead, keepTail = 2, 4
	case Email:
		for i := start; i < end; i++ {
			if b[i] == '@' {
				end = i // keep the domain
				break
			}
		}
	}
	total := 0
	for i := start; i < end; i++ {
		if isAlnum(b[i]) {
			total++
		}
	}
	if total <= keepHead+keepTail {
		keepHead, keepTail = 0, 0
	}
	seen := 0
	for i := start; i < end; i++ {
		if !isAlnum(b[i]) {
			continue
		}
		if seen >= keepHead && seen < total-keepTail {
			b[i] = '*'
		}
		seen++
	}
}

// ---- byte classes -----------------------------------------------------------

const (
	clsOther uint8 = iota
	clsDigit
	clsWord // letters and '_'
	clsAt
	clsColon
	clsEquals
	clsDash
	clsPlus
	clsParen
)

var classes = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clsWord
		t[c-32] = clsWord
	}
	t['_'] = clsWord
	t['@'] = clsAt
	t[':'] = clsColon
	t['='] = clsEquals
	t['-'] = clsDash
	t['+'] = clsPlus
	t['('] = clsParen
	return t
}()

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlnum(c byte) bool { return alnumTab[c] }
func isWord(c byte) bool  { return isAlnum(c) || c == '_' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

var alnumTab = func() (t [256]bool) {
	for c := range t {
		b := byte(c)
		t[c] = isDigit(b) || isUpper(b) || isLower(b)
	}
	return
}()

func lower(c byte) byte {
	if isUpper(c) {
		return c + 32
	}
	return c
}

// ---- the scan ---------------------------------------------------------------

type scanner struct {
	s   string
	set kindSet
	out []Match
}

func (sc *scanner) add(k Entity, start, end int) {
	sc.out = append(sc.out, Match{Kind: k, Start: start, End: end})
}

func detect(s string, set kindSet, out []Match) []Match {
	sc := scanner{s: s, set: set, out: out}
	n := len(s)
	for i := 0; i < n; {
		at := i
		switch classes[s[i]] {
		case clsOther:
			i++
			for i < n && classes[s[i]] == clsOther {
				i++
			}
		case clsWord:
			if i+1 < n && wordMayMatch(s[i], s[i+1]) {
				i = sc.word(i)
				break
			}
			// Most words of prose: no detector starts with these two
			// bytes. (Keys of key=value secrets and e-mail local parts are
			// found by looking back from '=', ':' and '@'.)
			i++
			for i < n && wordByte[s[i]] {
				i++
			}
		case clsDigit:
			i = sc.number(i)
		case clsAt:
			i = sc.email(i)
		case clsColon, clsEquals:
			i = sc.colonOrEquals(i)
		case clsDash:
			i = sc.dash(i)
		case clsPlus, clsParen:
			if i+1 < n && (isDigit(s[i+1]) || s[i+1] == '(') && (i == 0 || !isWord(s[i-1])) {
				i = sc.number(i)
			} else {
				i++
			}
		}
		if i <= at {
			i = at + 1 // every handler must make progress; guard against one that does not
		}
	}
	return resolveOverlaps(sc.out)
}

// resolveOverlaps sorts matches by start and drops any that overlaps an
// earlier (or, at the same start, longer) one. Insertion sort: there are few
// matches, and it does not allocate.
func resolveOverlaps(ms []Match) []Match {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && (ms[j].Start < ms[j-1].Start || ms[j].Start == ms[j-1].Start && ms[j].End > ms[j-1].End); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	k := 0
	for _, m := range ms {
		if k > 0 && m.Start < ms[k-1].End {
			continue
		}
		ms[k] = m
		k++
	}
	return ms[:k]
}

// spanEnd returns the end of the run of bytes from i satisfying ok.
func spanEnd(s string, i int, ok func(byte) bool) int {
	for i < len(s) && ok(s[i]) {
		i++
	}
	return i
}

// labelSet is a set of lower-case labels looked for just before a
// candidate ("order 555-123-4567"). second[c] has a bit per byte class
// that a label starting with c continues with, so most positions of the
// window are rejected with two table reads instead of one comparison per
// label.
type labelSet struct {
	byFirst [256][]string
	second  [256]uint64
}

// labelBit maps the second byte of a label to a bit: letters to their own,
// everything else shares bit 63 (a false positive only costs a compare).
func labelBit(c byte) uint64 {
	if c >= 'a' && c <= 'z' {
		return 1 << (c - 'a')
	}
	return 1 << 63
}

func newLabelSet(words ...string) *labelSet {
	l := &labelSet{}
	for _, w := range words {
		l.byFirst[w[0]] = append(l.byFirst[w[0]], w)
		l.second[w[0]] |= labelBit(w[1])
	}
	return l
}

// lowerTab is ASCII lower-casing as a table.
var lowerTab = func() (t [256]byte) {
	for c := range t {
		t[c] = lower(byte(c))
	}
	return
}()

// contextBefore reports whether one of the labels occurs in the up to
// `within` bytes before i, case-insensitively.
func contextBefore(s string, i, within int, l *labelSet) bool {
	return l.in(s[max(i-within, 0):i])
}

// in reports whether one of the labels occurs in s, case-insensitively.
func (l *labelSet) in(s string) bool {
	for j := 0; j+1 < len(s); j++ {
		c := lowerTab[s[j]]
		if l.second[c]&labelBit(lowerTab[s[j+1]]) == 0 {
			continue
		}
		for _, word := range l.byFirst[c] {
			if len(s)-j >= len(word) && matchLower(s[j:j+len(word)], word) {
				return true
			}
		}
	}
	return false
}

// matchLower reports whether s lower-cased equals word.
func matchLower(s, word string) bool {
	for k := 0; k < len(word); k++ {
		if lowerTab[s[k]] != word[k] {
			return false
		}
	}
	return true
}
