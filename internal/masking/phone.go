package masking

import (
	"regexp/syntax"
	"slices"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// Phone confirmation without regular expressions.
//
// The detector used to confirm every phone-shaped candidate with
// phonenumbers.Parse(candidate, "US") and phonenumbers.IsValidNumber. Both
// run a dozen backtracking regular expressions and build strings, about
// 40 µs per candidate, which held phone-dense text to under 1 MB/s. The
// decision itself depends only on the digits: the library's metadata
// patterns match digit strings, so each compiles to a small DFA over the
// ten digits. phoneValid replays the library's parse and validation steps
// for the candidates the scanner produces (ASCII digits and separators, an
// optional leading '+') on those DFAs, and falls back to the library for
// the rare inputs it does not model: an IDD prefix ("011 44 …"), an
// unknown country code after '+', or a national prefix rule that matches
// and needs the library's capture-group transform (Argentina, Japan, …).
// TestPhoneValidMatchesLibrary compares the two on every region's example
// numbers and their mutations.

// digitDFA is a deterministic automaton over the digits '0'..'9' that runs
// up to 32 metadata patterns at once: bit k of a state's masks is pattern
// k. State 0 is dead, state 1 the start.
type digitDFA struct {
	next   []int32  // 10 entries per state
	accNow []uint32 // patterns that match the digits read so far (no '$' pending)
	accEnd []uint32 // patterns that match if the input ends here
}

// maxDFAStates bounds the subset construction; patterns that need more are
// left to the library (the largest region in the current metadata needs a
// few hundred).
const maxDFAStates = 1 << 15

// compileDigitDFA builds the DFA of up to 32 Go-syntax patterns, or nil
// when one does not parse or uses an assertion other than end of text.
func compileDigitDFA(patterns ...string) *digitDFA {
	if len(patterns) > 32 {
		return nil
	}
	progs := make([]*syntax.Prog, len(patterns))
	for k, pat := range patterns {
		re, err := syntax.Parse(pat, syntax.Perl)
		if err != nil {
			return nil
		}
		if progs[k], err = syntax.Compile(re.Simplify()); err != nil || len(progs[k].Inst) >= 1<<20 {
			return nil
		}
		for _, in := range progs[k].Inst {
			if in.Op == syntax.InstEmptyWidth && syntax.EmptyOp(in.Arg)&^(syntax.EmptyEndText|syntax.EmptyEndLine) != 0 {
				return nil
			}
		}
	}
	// A thread is pattern<<20 | pc. closure adds a thread and what it
	// reaches without reading a digit; '$' instructions stay in the set,
	// pending, and are crossed only at the end of the input.
	// stamps mark the threads one closure has visited: a stamp per
	// instruction, bumped per closure, so that nothing is cleared or
	// allocated for each (state, digit) pair.
	base := make([]uint32, len(progs))
	total := uint32(0)
	for k, p := range progs {
		base[k] = total
		total += uint32(len(p.Inst))
	}
	stamps := make([]uint32, total)
	stamp := uint32(0)
	newSeen := func() { stamp++ }
	var closure func(set []uint32, th uint32, crossEnd bool) []uint32
	closure = func(set []uint32, th uint32, crossEnd bool) []uint32 {
		at := base[th>>20] + th&(1<<20-1)
		if stamps[at] == stamp {
			return set
		}
		stamps[at] = stamp
		k, pc := th>>20, th&(1<<20-1)
		in := &progs[k].Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			set = closure(set, k<<20|in.Out, crossEnd)
			return closure(set, k<<20|in.Arg, crossEnd)
		case syntax.InstNop, syntax.InstCapture:
			return closure(set, k<<20|in.Out, crossEnd)
		case syntax.InstEmptyWidth:
			if crossEnd {
				return closure(set, k<<20|in.Out, crossEnd)
			}
		case syntax.InstFail:
			return set
		}
		return append(set, th)
	}
	matches := func(set []uint32) (m uint32) {
		for _, th := range set {
			if progs[th>>20].Inst[th&(1<<20-1)].Op == syntax.InstMatch {
				m |= 1 << (th >> 20)
			}
		}
		return m
	}
	d := &digitDFA{next: make([]int32, 10), accNow: []uint32{0}, accEnd: []uint32{0}}
	sets := [][]uint32{nil} // state 0: dead
	ids := map[string]int32{}
	var kb []byte
	add := func(set []uint32) int32 {
		if len(set) == 0 {
			return 0
		}
		slices.Sort(set)
		kb = kb[:0]
		for _, th := range set {
			kb = append(kb, byte(th), byte(th>>8), byte(th>>16), byte(th>>24))
		}
		if id, ok := ids[string(kb)]; ok {
			return id
		}
		id := int32(len(sets))
		ids[string(kb)] = id
		sets = append(sets, set)
		d.next = append(d.next, make([]int32, 10)...)
		var end []uint32
		newSeen()
		for _, th := range set {
			end = closure(end, th, true)
		}
		d.accNow = append(d.accNow, matches(set))
		d.accEnd = append(d.accEnd, matches(end))
		return id
	}
	var start []uint32
	newSeen()
	for k, p := range progs {
		start = closure(start, uint32(k)<<20|uint32(p.Start), false)
	}
	if add(start) != 1 {
		return nil // no pattern can match anything
	}
	for id := 1; id < len(sets); id++ {
		if len(sets) > maxDFAStates {
			return nil
		}
		for dig := 0; dig < 10; dig++ {
			var nxt []uint32
			newSeen()
			for _, th := range sets[id] {
				in := &progs[th>>20].Inst[th&(1<<20-1)]
				switch in.Op {
				case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
					if in.MatchRune(rune('0' + dig)) {
						nxt = closure(nxt, th&^(1<<20-1)|in.Out, false)
					}
				}
			}
			d.next[id*10+dig] = add(nxt)
		}
	}
	return d
}

// run returns the patterns that match all of digits (the library's
// "^(?:pattern)$").
func (d *digitDFA) run(digits []byte) uint32 {
	st := int32(1)
	for _, c := range digits {
		if st = d.next[int(st)*10+int(c-'0')]; st == 0 {
			return 0
		}
	}
	return d.accEnd[st]
}

// full reports whether pattern 0 matches all of digits.
func (d *digitDFA) full(digits []byte) bool { return d.run(digits)&1 != 0 }

// prefix reports whether pattern 0 matches a prefix of digits (the
// library's "^(?:pattern)").
func (d *digitDFA) prefix(digits []byte) bool {
	st := int32(1)
	for _, c := range digits {
		if d.accNow[st]&1 != 0 {
			return true
		}
		if st = d.next[int(st)*10+int(c-'0')]; st == 0 {
			return false
		}
	}
	return (d.accNow[st]|d.accEnd[st])&1 != 0
}

// phoneRegion is the compiled metadata of one region (or one
// non-geographic calling code).
type phoneRegion struct {
	meta *phonenumbers.PhoneMetadata
	once sync.Once
	ok   bool // every pattern compiled

	// descs runs the general description (pattern 0) and the number types
	// that have numbers (patterns 1…) at once; lenOK[n] has bit k when
	// pattern k allows n digits.
	descs      *digitDFA
	lenOK      [maxNSN + 1]uint32
	leading    *digitDFA // leading_digits, nil when absent
	idd        *digitDFA // international prefix
	npp        string    // national prefix for parsing, when a plain digit string
	nppRe      *digitDFA // otherwise its DFA (the library decides when it matches)
	possible   []int32   // general possible lengths
	localOnly  []int32
	nppComplex bool
}

// maxNSN is the library's MAX_LENGTH_FOR_NSN.
const maxNSN = 17

func (r *phoneRegion) compile() bool {
	r.once.Do(func() {
		m := r.meta
		gd := m.GetGeneralDesc()
		if gd == nil || len(gd.GetPossibleLength()) == 0 {
			return
		}
		descs := []*phonenumbers.PhoneNumberDesc{gd, m.GetPremiumRate(), m.GetTollFree(), m.GetSharedCost(),
			m.GetVoip(), m.GetPersonalNumber(), m.GetPager(), m.GetUan(), m.GetVoicemail(), m.GetFixedLine()}
		if !m.GetSameMobileAndFixedLinePattern() {
			// With the same pattern the library does not test mobile
			// when fixed-line fails, even if the lengths differ.
			descs = append(descs, m.GetMobile())
		}
		var patterns []string
		for _, pd := range descs {
			if pd == nil {
				continue
			}
			var lens uint32
			for _, l := range pd.PossibleLength {
				if l >= 0 && l <= maxNSN {
					lens |= 1 << l
				}
			}
			if len(pd.PossibleLength) == 0 {
				lens = 1<<(maxNSN+1) - 1 // no lengths listed: the pattern decides
			}
			if lens == 0 && len(patterns) > 0 {
				continue // a type without numbers ("NA", length -1)
			}
			for n := range r.lenOK {
				if lens&(1<<n) != 0 {
					r.lenOK[n] |= 1 << len(patterns)
				}
			}
			patterns = append(patterns, pd.GetNationalNumberPattern())
		}
		if r.descs = compileDigitDFA(patterns...); r.descs == nil {
			return
		}
		if ld := m.GetLeadingDigits(); ld != "" {
			if r.leading = compileDigitDFA(ld); r.leading == nil {
				return
			}
		}
		if ip := m.GetInternationalPrefix(); ip != "" {
			if r.idd = compileDigitDFA(ip); r.idd == nil {
				return
			}
		}
		npp := m.GetNationalPrefixForParsing()
		if m.GetNationalPrefixTransformRule() == "" && allOf(npp, isDigit) {
			r.npp = npp
		} else {
			r.nppComplex = true
			if r.nppRe = compileDigitDFA(npp); r.nppRe == nil {
				return
			}
		}
		r.possible = gd.GetPossibleLength()
		r.localOnly = gd.GetPossibleLengthLocalOnly()
		r.ok = true
	})
	return r.ok
}

// generalPattern reports whether the general description's pattern (not
// its lengths) matches num, as the library's parsing steps test it.
func (r *phoneRegion) generalPattern(num []byte) bool { return r.descs.run(num)&1 != 0 }

// typeOK is the library's getNumberTypeHelper(nsn) != UNKNOWN: the
// general description and at least one number type match, lengths and
// patterns.
func (r *phoneRegion) typeOK(nsn []byte) bool {
	if len(nsn) > maxNSN {
		return false
	}
	m := r.descs.run(nsn) & r.lenOK[len(nsn)]
	return m&1 != 0 && m&^1 != 0
}

type lengthResult uint8

const (
	lenPossible lengthResult = iota
	lenLocalOnly
	lenTooShort
	lenTooLong
	lenInvalid
)

// testLength is the library's testNumberLength(number, metadata, UNKNOWN).
func (r *phoneRegion) testLength(n int) lengthResult {
	pl := r.possible
	if pl[0] == -1 {
		return lenInvalid
	}
	for _, l := range r.localOnly {
		if int(l) == n {
			return lenLocalOnly
		}
	}
	switch {
	case int(pl[0]) == n:
		return lenPossible
	case int(pl[0]) > n:
		return lenTooShort
	case int(pl[len(pl)-1]) < n:
		return lenTooLong
	}
	for _, l := range pl[1:] {
		if int(l) == n {
			return lenPossible
		}
	}
	return lenInvalid
}

// stripNationalPrefix is the library's maybeStripNationalPrefixAndCarrierCode;
// decided is false when the prefix rule needs the library.
func (r *phoneRegion) stripNationalPrefix(num []byte) (out []byte, decided bool) {
	if len(num) == 0 {
		return num, true
	}
	if r.nppComplex {
		if r.nppRe.prefix(num) {
			return nil, false
		}
		return num, true
	}
	if r.npp == "" || len(num) < len(r.npp) || string(num[:len(r.npp)]) != r.npp {
		return num, true
	}
	rest := num[len(r.npp):]
	if r.generalPattern(num) && !r.generalPattern(rest) {
		return num, true // the original was viable and the stripped one is not
	}
	return rest, true
}

// phoneTables holds the metadata, indexed once.
var phoneTables struct {
	once    sync.Once
	regions map[string]*phoneRegion
	nonGeo  map[int]*phoneRegion
	ccs     [1000][]string       // regions per calling code
	ccMeta  [1000][]*phoneRegion // their metadata, in the same order
	known   [1000]bool           // calling codes the library knows
	us      *phoneRegion
}

func loadPhoneTables() {
	phoneTables.once.Do(func() {
		t := &phoneTables
		t.regions = map[string]*phoneRegion{}
		t.nonGeo = map[int]*phoneRegion{}
		if coll, err := phonenumbers.MetadataCollection(); err == nil {
			for _, m := range coll.GetMetadata() {
				if m.GetId() == "001" {
					t.nonGeo[int(m.GetCountryCode())] = &phoneRegion{meta: m}
				} else {
					t.regions[m.GetId()] = &phoneRegion{meta: m}
				}
			}
		}
		for cc := range phonenumbers.GetSupportedCallingCodes() {
			if cc > 0 && cc < 1000 {
				t.known[cc] = true
				t.ccs[cc] = phonenumbers.GetRegionCodesForCountryCode(cc)
				for _, id := range t.ccs[cc] {
					t.ccMeta[cc] = append(t.ccMeta[cc], regionFor(cc, id))
				}
			}
		}
		t.us = t.regions[phoneRegionDefault]
	})
}

// phoneRegionDefault is the region numbers without a '+' are read in.
const phoneRegionDefault = "US"

func regionFor(cc int, id string) *phoneRegion {
	if id == "001" {
		return phoneTables.nonGeo[cc]
	}
	return phoneTables.regions[id]
}

// phoneValid reports whether phonenumbers.Parse(cand, "US") succeeds and
// phonenumbers.IsValidNumber accepts the result. digits are cand's digits
// and plus tells whether cand starts with '+'.
func phoneValid(cand string, plus bool, digits []byte) bool {
	if v, decided := phoneValidFast(plus, digits); decided {
		return v
	}
	num, err := phonenumbers.Parse(strings.Clone(cand), phoneRegionDefault)
	return err == nil && phonenumbers.IsValidNumber(num)
}

func phoneValidFast(plus bool, d []byte) (valid, decided bool) {
	loadPhoneTables()
	t := &phoneTables
	us := t.us
	if us == nil || !us.compile() || len(d) < 2 {
		return false, false
	}
	var cc int
	var national []byte
	meta := us
	if plus {
		if len(d) <= 2 {
			return false, true // too short after the '+'
		}
		if d[0] == '0' {
			return false, false
		}
		v := 0
		for i := 0; i < 3; i++ {
			v = v*10 + int(d[i]-'0')
			if t.known[v] {
				cc, national = v, d[i+1:]
				break
			}
		}
		if cc == 0 {
			return false, false // the library retries without the '+'
		}
		regions := t.ccs[cc]
		if len(regions) == 0 {
			return false, true
		}
		if regions[0] != phoneRegionDefault {
			meta = t.ccMeta[cc][0]
		}
	} else {
		if us.idd != nil && us.idd.prefix(d) {
			return false, false // "011 44 …": the library strips the IDD
		}
		usCC := int(us.meta.GetCountryCode())
		if usCC == 1 && d[0] == '1' {
			pot, ok := us.stripNationalPrefix(d[1:])
			if !ok {
				return false, false
			}
			fullValid := us.generalPattern(d)
			natValid := us.generalPattern(pot)
			if (!fullValid && natValid) || us.testLength(len(d)) == lenTooLong {
				cc, national = usCC, pot
			}
		} else if usCC != 1 {
			return false, false
		}
		if cc == 0 {
			cc, national = usCC, d
		}
	}
	if len(national) < 2 {
		return false, true
	}
	if meta != nil {
		if !meta.compile() {
			return false, false
		}
		pot, ok := meta.stripNationalPrefix(national)
		if !ok {
			return false, false
		}
		switch meta.testLength(len(pot)) {
		case lenTooShort, lenLocalOnly, lenInvalid:
		default:
			national = pot
		}
	}
	if len(national) < 2 || len(national) > 17 {
		return false, true
	}
	// IsValidNumber: the region of the number, then its types.
	regions := t.ccs[cc]
	var region *phoneRegion
	switch len(regions) {
	case 0:
		return false, true
	case 1:
		region = t.ccMeta[cc][0]
		if region == nil {
			return false, true
		}
		if !region.compile() {
			return false, false
		}
	default:
		for _, r := range t.ccMeta[cc] {
			if r == nil {
				continue
			}
			if !r.compile() {
				return false, false
			}
			if r.leading != nil {
				if r.leading.prefix(national) {
					region = r
					break
				}
			} else if r.typeOK(national) {
				region = r
				break
			}
		}
		if region == nil {
			return false, true
		}
	}
	return region.typeOK(national), true
}
