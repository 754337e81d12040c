package masking

import (
	"net/netip"
)

// Labels that, just before a number, say what it is not (or, for SSNs,
// what a bare nine-digit number is).
var (
	ipLabels    = newLabelSet("version", "ver", "release", "v.", "build", "oid")
	ssnLabels   = newLabelSet("ssn", "social security", "social-security")
	phoneLabels = newLabelSet("order", "invoice", "serial", "ref", "tracking", "sku", "isbn", "part", "ticket",
		"account", "acct", "id:", "id ", "no.", "version", "build")
)

// numSpan is a run of digit groups with separators ("4111 1111 1111 1111",
// "+1 (415) 555-2671", "10.0.0.1").
type numSpan struct {
	start, end int
	plus       bool
	paren      bool
	groups     [12]uint8 // digits per group
	ng         int
	seps       uint8 // bit set of separators seen
	digits     [40]byte
	nd         int
	overflow   bool
}

const (
	sepSpace uint8 = 1 << iota
	sepDash
	sepDot
	sepSlash
	sepParen
)

// number handles a run starting with a digit, '+' or '(' at i and returns
// where scanning resumes.
func (sc *scanner) number(i int) int {
	s := sc.s
	if !numBoundaryBefore(s, i) {
		return max(spanEnd(s, i, isWord), i+1)
	}
	var ns numSpan
	ns.start = i
	p := i
	if s[p] == '+' {
		ns.plus = true
		p++
	}
	inParen := false
	if p < len(s) && s[p] == '(' {
		inParen, ns.paren = true, true
		p++
	}
	for {
		q := p
		for q < len(s) && isDigit(s[q]) {
			if ns.nd < len(ns.digits) {
				ns.digits[ns.nd] = s[q]
				ns.nd++
			} else {
				ns.overflow = true
			}
			q++
		}
		if q == p {
			break
		}
		if ns.ng < len(ns.groups) {
			ns.groups[ns.ng] = uint8(min(q-p, 255))
			ns.ng++
		} else {
			ns.overflow = true
		}
		p = q
		if inParen && p < len(s) && s[p] == ')' {
			inParen = false
			ns.seps |= sepParen
			p++
			if p+1 < len(s) && (s[p] == ' ' || s[p] == '-') && isDigit(s[p+1]) {
				p++
			}
			if p < len(s) && isDigit(s[p]) {
				continue
			}
			break
		}
		if p+1 < len(s) {
			var bit uint8
			switch s[p] {
			case ' ':
				bit = sepSpace
			case '-':
				bit = sepDash
			case '.':
				bit = sepDot
			case '/':
				bit = sepSlash
			}
			if bit != 0 && isDigit(s[p+1]) {
				ns.seps |= bit
				p++
				continue
			}
			if bit == sepSpace && s[p+1] == '(' && p+2 < len(s) && isDigit(s[p+2]) && !inParen {
				ns.seps |= sepSpace | sepParen
				inParen, ns.paren = true, true
				p += 2
				continue
			}
		}
		break
	}
	ns.end = p
	if s[i] == '(' && (inParen || s[p-1] == ')') {
		// "(4111 1111 1111 1111)": a number in parentheses, not one with
		// an area code.
		ns.paren = false
		ns.seps &^= sepParen
		ns.start++
		if !inParen {
			ns.end--
		}
	}
	if ns.nd == 0 {
		return p + 1
	}
	if p < len(s) && isWord(s[p]) {
		// digits glued to letters ("2024abc"): not a number; skip the word.
		return spanEnd(s, p, isWord)
	}
	if ns.overflow {
		return p
	}
	sc.classifyNumber(&ns)
	return p
}

// numBoundaryBefore: the number must not continue a word, a dotted or
// dashed identifier ("v1.2.3", "build-2024"), or a decimal.
func numBoundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	c := s[i-1]
	if isWord(c) {
		return false
	}
	if (c == '.' || c == '-' || c == '/' || c == ':' || c == '#') && i >= 2 && isWord(s[i-2]) {
		return false
	}
	return c != '#' // "#123-45-6789" is an order or ticket number
}

// boundaryAfter: the match must not be followed by more of a number
// (".5", "-2") or a word.
func boundaryAfter(s string, end int) bool {
	if end >= len(s) {
		return true
	}
	c := s[end]
	if isWord(c) {
		return false
	}
	if (c == '.' || c == '-' || c == ',') && end+1 < len(s) && isDigit(s[end+1]) {
		return false
	}
	return true
}

func (sc *scanner) classifyNumber(ns *numSpan) {
	s := sc.s
	d := ns.digits[:ns.nd]
	if !boundaryAfter(s, ns.end) {
		return
	}
	// IPv4: four dot-separated groups of 1–3 digits.
	if ns.seps == sepDot && ns.ng == 4 && !ns.plus && !ns.paren {
		if sc.set.has(kIP) && !contextBefore(s, ns.start, 12, ipLabels) {
			if a, err := netip.ParseAddr(s[ns.start:ns.end]); err == nil && a.Is4() {
				sc.add(IPAddress, ns.start, ns.end)
			}
		}
		return
	}
	if ns.plus || ns.paren {
		sc.phone(ns)
		return
	}
	// Cards: 13–19 digits, one kind of separator, groups of card shape.
	if sc.set.has(kCard) && cardShape(ns) && luhn(d) && knownIIN(d) {
		sc.add(CreditCard, ns.start, ns.end)
		return
	}
	if sc.set.has(kSSN) && ssnShape(s, ns) && validSSN(d) {
		sc.add(USSSN, ns.start, ns.end)
		return
	}
	sc.phone(ns)
}

func cardShape(ns *numSpan) bool {
	if ns.nd < 13 || ns.nd > 19 || ns.paren || ns.plus {
		return false
	}
	switch ns.seps {
	case 0:
		return ns.ng == 1
	case sepSpace, sepDash:
		if ns.groups[0] != 4 {
			return false
		}
		for _, g := range ns.groups[1:ns.ng] {
			if g < 3 || g > 6 {
				return false
			}
		}
		return true
	}
	return false
}

// luhn is the ISO/IEC 7812 check digit test.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i] - '0')
		if double {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
		double = !double
	}
	return sum%10 == 0
}

// knownIIN checks the issuer prefix and length against the major networks:
// a Luhn-valid number outside them is more likely an account or order id.
func knownIIN(d []byte) bool {
	n := len(d)
	p := func(k int) int {
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	p2, p3, p4, p6 := p(2), p(3), p(4), p(6)
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649, p6 >= 622126 && p6 <= 622925: // Discover
		return n >= 16 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return n >= 14 && n <= 19
	case p2 == 62: // UnionPay
		return n >= 16 && n <= 19
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16 && n <= 19
	case p2 == 50, p2 >= 56 && p2 <= 58, p2 == 63, p2 == 67: // Maestro
		return n >= 13 && n <= 19
	}
	return false
}

// ssnShape: 3-2-4 with one separator (dash or space), or nine bare digits
// right after an "SSN" / "social security" label.
func ssnShape(s string, ns *numSpan) bool {
	if ns.nd != 9 {
		return false
	}
	if ns.ng == 3 && (ns.seps == sepDash || ns.seps == sepSpace) &&
		ns.groups[0] == 3 && ns.groups[1] == 2 && ns.groups[2] == 4 {
		return true
	}
	return ns.ng == 1 && contextBefore(s, ns.start, 24, ssnLabels)
}

// validSSN applies the SSA rules: area not 000, 666 or 900–999; group not
// 00; serial not 0000; and not one of the numbers published in
// advertisements or used as examples.
func validSSN(d []byte) bool {
	area := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	group := int(d[3]-'0')*10 + int(d[4]-'0')
	serial := string(d[5:9])
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == "0000" {
		return false
	}
	switch string(d) {
	case "078051120", "219099999", "123456789":
		return false
	}
	same := true
	for _, c := range d[1:] {
		same = same && c == d[0]
	}
	return !same
}

// phone checks a phone-shaped candidate with libphonenumber. The cheap
// pre-filter keeps the library (microseconds per call) off ordinary
// numbers: a candidate needs a '+' or parentheses, or separated groups that
// do not look like a date, and no order/invoice/serial label before it.
func (sc *scanner) phone(ns *numSpan) {
	if !sc.set.has(kPhone) || ns.nd < 7 || ns.nd > 15 {
		return
	}
	s := sc.s
	if ns.seps&sepSlash != 0 {
		return // dates, fractions
	}
	if !ns.plus && !ns.paren {
		if ns.ng < 2 {
			return // bare digit runs are ids far more often than phone numbers
		}
		if ns.groups[0] == 4 && ns.ng >= 3 && ns.groups[1] <= 2 {
			return // 2024-01-15 and friends
		}
		if ns.groups[ns.ng-1] < 2 {
			return
		}
		if ns.seps == sepDot && ns.ng > 3 {
			return // dotted versions / OIDs
		}
	}
	if contextBefore(s, ns.start, 20, phoneLabels) {
		return
	}
	if !phoneValid(s[ns.start:ns.end], ns.plus, ns.digits[:ns.nd]) {
		return
	}
	sc.add(Phone, ns.start, ns.end)
}
