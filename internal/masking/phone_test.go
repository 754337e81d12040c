package masking

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// phoneCandidates returns phone-shaped strings of the kind the scanner
// hands to phoneValid: every region's example numbers in E.164,
// international and national format, and mutations of them (a digit
// changed, dropped or added, a national or trunk prefix added).
func phoneCandidates() []string {
	var out []string
	rng := rand.New(rand.NewPCG(1, 2))
	addFormats := func(n *phonenumbers.PhoneNumber) {
		if n == nil {
			return
		}
		for _, f := range []phonenumbers.PhoneNumberFormat{phonenumbers.E164, phonenumbers.INTERNATIONAL, phonenumbers.NATIONAL} {
			out = append(out, phonenumbers.Format(n, f))
		}
	}
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	// Sorted: the mutations below draw from one seeded generator.
	regions := slices.Sorted(maps.Keys(phonenumbers.GetSupportedRegions()))
	for _, region := range regions {
		for _, typ := range types {
			addFormats(phonenumbers.GetExampleNumberForType(region, typ))
		}
	}
	for _, cc := range slices.Sorted(maps.Keys(phonenumbers.GetSupportedGlobalNetworkCallingCodes())) {
		addFormats(phonenumbers.GetExampleNumberForNonGeoEntity(cc))
	}
	base := len(out)
	for i := 0; i < base; i++ {
		s := out[i]
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
		out = append(out, digits, "1"+digits, "0"+digits, "1 "+s, "0"+s)
		for k := 0; k < 6; k++ {
			b := []byte(s)
			var pos []int
			for j, c := range b {
				if isDigit(c) {
					pos = append(pos, j)
				}
			}
			if len(pos) == 0 {
				continue
			}
			p := pos[rng.IntN(len(pos))]
			switch k % 3 {
			case 0:
				b[p] = byte('0' + rng.IntN(10))
			case 1:
				b = append(b[:p], b[p+1:]...)
			case 2:
				b = append(b[:p], append([]byte{byte('0' + rng.IntN(10))}, b[p:]...)...)
			}
			out = append(out, string(b))
		}
	}
	for i := 0; i < 20000; i++ {
		n := 7 + rng.IntN(9)
		b := make([]byte, 0, n+1)
		if rng.IntN(2) == 0 {
			b = append(b, '+')
		}
		for j := 0; j < n; j++ {
			b = append(b, byte('0'+rng.IntN(10)))
		}
		out = append(out, string(b))
	}
	// Keep what the scanner can produce: '+', digits and separators.
	k := 0
	for _, s := range out {
		if s != "" && strings.Trim(s, "+0123456789 ().-") == "" && strings.LastIndexByte(s, '+') <= 0 {
			out[k] = s
			k++
		}
	}
	return out[:k]
}

// TestPhoneValidMatchesLibrary: the DFA replay of Parse + IsValidNumber
// decides exactly as the library on example numbers of every region and
// their mutations.
func TestPhoneValidMatchesLibrary(t *testing.T) {
	cands := phoneCandidates()
	decided, valid := 0, 0
	for _, c := range cands {
		var digits []byte
		for i := 0; i < len(c); i++ {
			if isDigit(c[i]) {
				digits = append(digits, c[i])
			}
		}
		num, err := phonenumbers.Parse(c, phoneRegionDefault)
		want := err == nil && phonenumbers.IsValidNumber(num)
		got, ok := phoneValidFast(strings.HasPrefix(c, "+"), digits)
		if !ok {
			continue
		}
		decided++
		if want {
			valid++
		}
		if got != want {
			t.Errorf("%q: fast path says valid=%v, library %v", c, got, want)
		}
	}
	loadPhoneTables()
	for id, r := range phoneTables.regions {
		if !r.compile() {
			t.Errorf("region %s: metadata did not compile to DFAs", id)
		}
	}
	for cc, r := range phoneTables.nonGeo {
		if !r.compile() {
			t.Errorf("calling code %d: metadata did not compile to DFAs", cc)
		}
	}
	t.Logf("%d candidates, %d decided without the library (%d valid)", len(cands), decided, valid)
	if decided < len(cands)*9/10 {
		t.Errorf("only %d of %d candidates decided without the library", decided, len(cands))
	}
}

// FuzzPhoneValid: for any digit string, with or without '+', the DFA
// replay agrees with phonenumbers.Parse + IsValidNumber whenever it decides.
func FuzzPhoneValid(f *testing.F) {
	for _, s := range []string{"+14156273980", "2127364821", "+442079460321", "+81332245000", "0119876543210", "18005551234", "+8005551234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plus := strings.HasPrefix(s, "+")
		var digits []byte
		for i := 0; i < len(s) && len(digits) < 20; i++ {
			if isDigit(s[i]) {
				digits = append(digits, s[i])
			}
		}
		if len(digits) < 2 {
			return
		}
		cand := string(digits)
		if plus {
			cand = "+" + cand
		}
		got, ok := phoneValidFast(plus, digits)
		if !ok {
			return
		}
		num, err := phonenumbers.Parse(cand, phoneRegionDefault)
		if want := err == nil && phonenumbers.IsValidNumber(num); got != want {
			t.Fatalf("%q: fast path says valid=%v, library %v", cand, got, want)
		}
	})
}
