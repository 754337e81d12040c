package masking

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/netip"
	"strings"
)

// word handles a run of [A-Za-z0-9_] starting with a letter or '_' at i:
// token-shaped secrets (by prefix), JWTs, IBANs.
func (sc *scanner) word(i int) int {
	s := sc.s
	j := i + 1
	for j < len(s) && wordByte[s[j]] {
		j++
	}
	c := s[i]
	wlen := j - i
	dashNext := j < len(s) && s[j] == '-'
	if wlen < 4 && !dashNext {
		return j
	}
	if i > 0 && (isWord(s[i-1]) || s[i-1] == '-') {
		return j // the middle of something longer
	}
	if sc.set.has(kJWT) && c == 'e' && wlen >= 10 && s[i+1] == 'y' && s[i+2] == 'J' {
		if end := jwtAt(s, i); end > 0 {
			sc.add(JWT, i, end)
			return end
		}
	}
	if sc.set.has(kIBAN) && wlen >= 4 && isUpper(c) && isUpper(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		if end := ibanAt(s, i); end > 0 {
			sc.add(IBAN, i, end)
			return end
		}
	}
	if sc.set.has(kSecret) && tokenPrefix(s[i:j]) {
		if end := tokenAt(s, i, j); end > 0 {
			sc.add(Secret, i, end)
			return end
		}
	}
	return j
}

// wordByte is [A-Za-z0-9_].
var wordByte = func() (w [256]bool) {
	for c := range w {
		w[c] = isWord(byte(c))
	}
	return
}()

// wordMayMatch reports whether a word starting with bytes c, d can be
// something word() detects: a JWT ("ey"), an IBAN (two capitals), an AWS
// or GCP key ("AK", "A3", "AI", …) or a token prefix (gh, gi(thub_pat_),
// gl(pat-), xo(x), xa(pp), sk, rk).
func wordMayMatch(c, d byte) bool {
	switch {
	case isUpper(c):
		return isUpper(d) || d == '3'
	case c == 'e':
		return d == 'y'
	case c == 'g':
		return d == 'h' || d == 'i' || d == 'l'
	case c == 'x':
		return d == 'o' || d == 'a'
	case c == 's', c == 'r':
		return d == 'k'
	}
	return false
}

// tokenPrefix is a quick test of the first two bytes of a word against the
// prefixes tokenAt knows, so that ordinary words skip it.
func tokenPrefix(w string) bool {
	if len(w) < 2 {
		return false
	}
	switch w[0] {
	case 'A':
		return true
	case 'g':
		return w[1] == 'h' || w[1] == 'i' || w[1] == 'l'
	case 'x':
		return w[1] == 'o' || w[1] == 'a'
	case 's', 'r':
		return w[1] == 'k'
	}
	return false
}

func isTokenChar(c byte) bool { return isWord(c) || c == '-' }

// tokenAt recognises vendor tokens by their fixed prefixes. The patterns are
// a subset of gitleaks' default rules (github.com/gitleaks/gitleaks,
// config/gitleaks.toml, v8.30.1, MIT License, Copyright (c) 2019 Zachary
// Rice), rewritten as prefix checks so that the scan stays one pass: rules
// aws-access-token, github-pat, github-fine-grained-pat, github-oauth,
// github-app-token, github-refresh-token, gitlab-pat, slack-bot-token,
// slack-user-token, slack-app-token, stripe-access-token, gcp-api-key,
// openai-api-key, anthropic-api-key.
func tokenAt(s string, i, wordEnd int) int {
	w := s[i:wordEnd]
	tokEnd := spanEnd(s, i, isTokenChar)
	tok := s[i:tokEnd]
	endOK := func(end int) bool { return end >= len(s) || !isTokenChar(s[end]) }
	switch s[i] {
	case 'A':
		// aws-access-token: (A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}
		if len(w) == 20 && (strings.HasPrefix(w, "AKIA") || strings.HasPrefix(w, "ASIA") ||
			strings.HasPrefix(w, "ABIA") || strings.HasPrefix(w, "ACCA") ||
			strings.HasPrefix(w, "A3T") && (isUpper(w[3]) || isDigit(w[3]))) &&
			allOf(w[4:], func(c byte) bool { return isUpper(c) || c >= '2' && c <= '7' }) &&
			!strings.HasSuffix(w, "EXAMPLE") {
			return wordEnd
		}
		// gcp-api-key: AIza[\w-]{35}
		if strings.HasPrefix(tok, "AIza") && len(tok) == 39 {
			return tokEnd
		}
	case 'g':
		// github-pat/oauth/app/refresh: gh[pousr]_[0-9a-zA-Z]{36}
		if len(w) == 40 && w[0] == 'g' && w[1] == 'h' && strings.IndexByte("pousr", w[2]) >= 0 && w[3] == '_' &&
			allOf(w[4:], isAlnum) && endOK(wordEnd) {
			return wordEnd
		}
		// github-fine-grained-pat: github_pat_\w{82}
		if strings.HasPrefix(w, "github_pat_") && len(w) == 93 {
			return wordEnd
		}
		// gitlab-pat: glpat-[\w-]{20}
		if strings.HasPrefix(tok, "glpat-") && len(tok) >= 26 {
			return tokEnd
		}
	case 'x':
		// slack-bot/user tokens: xox[bpe]-digits-digits-…; slack-app-token: xapp-\d-…
		if len(tok) >= 24 && (strings.HasPrefix(tok, "xoxb-") || strings.HasPrefix(tok, "xoxp-") ||
			strings.HasPrefix(tok, "xoxe-") || strings.HasPrefix(tok, "xoxa-") || strings.HasPrefix(tok, "xoxs-")) {
			seg := tok[5:]
			k := spanEnd(seg, 0, isDigit)
			if k >= 10 && k <= 13 && k < len(seg) && seg[k] == '-' {
				return tokEnd
			}
		}
		if strings.HasPrefix(tok, "xapp-") && len(tok) >= 20 && isDigit(tok[5]) {
			return tokEnd
		}
	case 's', 'r':
		// stripe-access-token: (sk|rk)_(test|live|prod)_[a-zA-Z0-9]{10,99}
		if len(w) >= 18 && (strings.HasPrefix(w, "sk_") || strings.HasPrefix(w, "rk_")) {
			rest := w[3:]
			if (strings.HasPrefix(rest, "test_") || strings.HasPrefix(rest, "live_") || strings.HasPrefix(rest, "prod_")) &&
				len(rest) >= 15 && allOf(rest[5:], isAlnum) {
				return wordEnd
			}
		}
		// openai-api-key (…T3BlbkFJ…) and anthropic-api-key (sk-ant-api03-…)
		if strings.HasPrefix(tok, "sk-") && len(tok) >= 40 {
			if strings.Contains(tok, "T3BlbkFJ") || strings.HasPrefix(tok, "sk-ant-") ||
				strings.HasPrefix(tok, "sk-proj-") || strings.HasPrefix(tok, "sk-svcacct-") {
				return tokEnd
			}
		}
	}
	return 0
}

func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isB64URL(c byte) bool { return isWord(c) || c == '-' }

// jwtAt recognises header.payload.signature where the header is base64url
// JSON with an "alg" member and the payload is base64url JSON.
func jwtAt(s string, i int) int {
	h := spanEnd(s, i, isB64URL)
	if h >= len(s) || s[h] != '.' {
		return 0
	}
	p := spanEnd(s, h+1, isB64URL)
	if p == h+1 || p >= len(s) || s[p] != '.' {
		return 0
	}
	end := spanEnd(s, p+1, isB64URL)
	if end < len(s) && (isWord(s[end]) || s[end] == '.') {
		return 0
	}
	if h-i > 2048 {
		return 0
	}
	hdr, err := base64.RawURLEncoding.DecodeString(s[i:h])
	if err != nil {
		return 0
	}
	var header struct {
		Alg *string `json:"alg"`
	}
	if json.Unmarshal(hdr, &header) != nil || header.Alg == nil {
		return 0
	}
	if s[h+1] != 'e' || s[h+2] != 'y' { // payload must be a JSON object too: "{" → "ey"
		return 0
	}
	return end
}

// ibanLengths is the IBAN length per country (ISO 13616 registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// ibanAt recognises an IBAN in compact form or printed in groups of four
// ("DE89 3704 0044 0532 0130 00") and checks it with mod-97.
func ibanAt(s string, i int) int {
	want, ok := ibanLengths[s[i:i+2]]
	if !ok {
		return 0
	}
	var buf [34]byte
	n, p := 0, i
	for p < len(s) && n < want {
		c := s[p]
		switch {
		case isDigit(c) || isUpper(c):
			buf[n] = c
			n++
			p++
		case c == ' ' && n%4 == 0 && n > 0 && p+1 < len(s) && (isDigit(s[p+1]) || isUpper(s[p+1])):
			p++
		default:
			return 0
		}
	}
	if n != want || (p < len(s) && isWord(s[p])) {
		return 0
	}
	// Move the first four characters to the end, letters → 10..35, mod 97.
	rem := 0
	for k := 0; k < n; k++ {
		c := buf[(k+4)%n]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		}
	}
	if rem != 1 {
		return 0
	}
	return p
}

// email handles '@' at i: a local part before it and a dotted domain with
// an alphabetic top-level label after it.
func (sc *scanner) email(i int) int {
	s := sc.s
	if !sc.set.has(kEmail) {
		return i + 1
	}
	isLocal := func(c byte) bool {
		return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	st := i
	for st > 0 && i-st < 64 && isLocal(s[st-1]) {
		st--
	}
	if st > 0 && (isLocal(s[st-1]) || s[st-1] == '@') {
		return i + 1 // local part too long or a run of '@'
	}
	for st < i && (s[st] == '.' || s[st] == '-' || s[st] == '+') {
		st++
	}
	if st == i || s[i-1] == '.' {
		return i + 1
	}
	// Domain: labels of [A-Za-z0-9-] separated by single dots.
	p := i + 1
	lastLabel, labels := 0, 0
	for p < len(s) && p-i < 255 {
		l := spanEnd(s, p, func(c byte) bool { return isAlnum(c) || c == '-' })
		if l == p || s[p] == '-' || s[l-1] == '-' {
			break
		}
		lastLabel = p
		labels++
		p = l
		if p+1 < len(s) && s[p] == '.' && isAlnum(s[p+1]) {
			p++
			continue
		}
		break
	}
	if labels < 2 {
		return i + 1
	}
	tld := s[lastLabel:p]
	if len(tld) < 2 || !allOf(tld, func(c byte) bool { return isUpper(c) || isLower(c) }) {
		return i + 1
	}
	if p < len(s) && (isWord(s[p]) || s[p] == '@') {
		return i + 1
	}
	sc.add(Email, st, p)
	return p
}

// colonOrEquals handles ':' and '=': IPv6 addresses, URL credentials
// (scheme://user:password@host) and secret assignments (api_key = "…").
func (sc *scanner) colonOrEquals(i int) int {
	s := sc.s
	if s[i] == ':' {
		if sc.set.has(kSecret) && strings.HasPrefix(s[i:], "://") {
			if st, end := urlPassword(s, i+3); end > 0 {
				sc.add(Secret, st, end)
				return end + 1 // past the '@': the host is not an e-mail domain
			}
		}
		if sc.set.has(kIP) {
			if st, end := ipv6Around(s, i); end > 0 {
				if m := len(sc.out); m > 0 && sc.out[m-1].End > st {
					sc.out = sc.out[:m-1] // "2001" was not something else
				}
				sc.add(IPAddress, st, end)
				return end
			}
		}
	}
	op := spanEnd(s, i, func(c byte) bool { return c == ':' || c == '=' || c == '>' })
	if sc.set.has(kSecret) && op-i <= 3 {
		if st, end := assignedSecret(s, i, op); end > 0 {
			if sc.set.has(kJWT) && strings.HasPrefix(s[st:], "eyJ") {
				if je := jwtAt(s, st); je > 0 {
					sc.add(JWT, st, je) // say what it is: a token=<JWT> is a JWT
					return je
				}
			}
			sc.add(Secret, st, end)
			return end
		}
	}
	return op
}

// urlPassword finds the password of scheme://user:password@host.
func urlPassword(s string, p int) (int, int) {
	notSep := func(c byte) bool {
		return c > ' ' && c != '/' && c != '@' && c != ':' && c != '"' && c != '\''
	}
	u := spanEnd(s, p, notSep)
	if u == p || u-p > 128 || u >= len(s) || s[u] != ':' {
		return 0, 0
	}
	pw := spanEnd(s, u+1, notSep)
	if pw == u+1 || pw-u > 256 || pw >= len(s) || s[pw] != '@' {
		return 0, 0
	}
	return u + 1, pw
}

// ipv6Around finds an IPv6 address containing the ':' at i.
func ipv6Around(s string, i int) (int, int) {
	isV6 := func(c byte) bool { return isHex(c) || c == ':' || c == '.' }
	st := i
	for st > 0 && i-st < 40 && (isHex(s[st-1]) || s[st-1] == ':') {
		st--
	}
	if st > 0 && (isWord(s[st-1]) || s[st-1] == '.' || s[st-1] == ':') {
		return 0, 0
	}
	end := spanEnd(s, i, isV6)
	if end-st > 45 {
		return 0, 0
	}
	for end > i && s[end-1] == '.' {
		end--
	}
	if end < len(s) && (isWord(s[end]) || s[end] == ':') {
		return 0, 0
	}
	cand := s[st:end]
	if strings.Count(cand, ":") < 2 || end-st < 3 {
		return 0, 0
	}
	a, err := netip.ParseAddr(cand)
	if err != nil || !a.Is6() {
		return 0, 0
	}
	return st, end
}

var secretKeywords = newLabelSet(
	"secret", "token", "password", "passwd", "pwd", "apikey", "api_key", "api-key",
	"access_key", "accesskey", "auth", "credential", "private_key", "privatekey", "client_secret",
)

// Keys that contain a keyword but name something that is not a secret
// (after gitleaks' generic-api-key allowlist).
var secretKeyExclusions = newLabelSet(
	"public", "_id", "-id", ".id", "name", "url", "uri", "endpoint", "file", "path", "length", "size",
	"type", "count", "expires", "expiry", "ttl", "csrf", "hint", "policy", "format", "prefix", "max",
	"min", "timeout", "version", "required", "enabled", "reset", "changed", "updated", "created",
	"method", "header", "field", "strength", "provider", "mode",
)

// assignedSecret recognises KEY <op> VALUE where KEY names a secret and
// VALUE looks random (gitleaks' generic-api-key rule: keyword, operator,
// 10+ characters not all letters, Shannon entropy ≥ 3.0 bits/char here).
func assignedSecret(s string, opStart, opEnd int) (int, int) {
	// Key: up to 3 quote/space bytes, then [A-Za-z0-9_.-]{1,50}.
	k := opStart
	for q := 0; q < 3 && k > 0 && (s[k-1] == '"' || s[k-1] == '\'' || s[k-1] == ' ' || s[k-1] == '\t'); q++ {
		k--
	}
	ke := k
	for k > 0 && ke-k < 50 && (isWord(s[k-1]) || s[k-1] == '.' || s[k-1] == '-') {
		k--
	}
	if k == ke {
		return 0, 0
	}
	key := s[k:ke]
	if !secretKeywords.in(key) {
		return 0, 0
	}
	if equalFold(key, "author") || equalFold(key, "authors") {
		return 0, 0
	}
	if secretKeyExclusions.in(key) {
		return 0, 0
	}
	// Value: skip up to 5 quote/space bytes and an HTTP auth scheme.
	p := opEnd
	for q := 0; q < 5 && p < len(s) && (s[p] == '"' || s[p] == '\'' || s[p] == ' ' || s[p] == '\t' || s[p] == '`'); q++ {
		p++
	}
	for _, scheme := range []string{"Bearer ", "bearer ", "Basic ", "Token ", "token "} {
		if strings.HasPrefix(s[p:], scheme) {
			p += len(scheme)
			break
		}
	}
	isVal := func(c byte) bool {
		return isWord(c) || c == '.' || c == '=' || c == '+' || c == '/' || c == '-' || c == '~' || c == '$' || c == '!' || c == '#' || c == '%' || c == '^' || c == '&' || c == '*'
	}
	ve := spanEnd(s, p, isVal)
	for ve > p && (s[ve-1] == '.' || s[ve-1] == ',') {
		ve--
	}
	v := s[p:ve]
	if len(v) < 8 || len(v) > 200 {
		return 0, 0
	}
	if allOf(v, func(c byte) bool { return isUpper(c) || isLower(c) || c == '_' || c == '.' || c == '-' }) && !randomCase(v) {
		return 0, 0 // identifiers, words, placeholders
	}
	if v[0] == '$' || strings.HasPrefix(v, "***") || strings.Contains(v, "xxxx") || strings.Contains(v, "XXXX") {
		return 0, 0 // ${VAR}, already masked
	}
	if entropy(v) < 3.0 {
		return 0, 0
	}
	return p, ve
}

// entropy is the Shannon entropy of s in bits per byte, computed as
// log2(n) - Σ c·log2(c) / n with the c·log2(c) terms from a table (values
// are at most 200 bytes long), so it costs no logarithm per call.
func entropy(s string) float64 {
	if len(s) == 0 {
		return 0
	}
	if len(s) >= len(cLog2c) {
		return entropySlow(s)
	}
	var counts [256]uint8
	sum := 0.0
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	for i := 0; i < len(s); i++ {
		if c := counts[s[i]]; c > 0 {
			sum += cLog2c[c]
			counts[s[i]] = 0
		}
	}
	n := len(s)
	return math.Log2(float64(n)) - sum/float64(n)
}

var cLog2c = func() (t [256]float64) {
	for c := 1; c < len(t); c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return
}()

func entropySlow(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// dash handles '-': PEM private key blocks (gitleaks rule private-key).
func (sc *scanner) dash(i int) int {
	s := sc.s
	if !sc.set.has(kSecret) || !strings.HasPrefix(s[i:], "-----BEGIN") {
		return i + 1
	}
	hdrEnd := strings.Index(s[i+10:min(len(s), i+10+120)], "-----")
	if hdrEnd < 0 {
		return i + 10
	}
	hdr := s[i+10 : i+10+hdrEnd]
	if !strings.Contains(hdr, "PRIVATE KEY") {
		return i + 10 + hdrEnd + 5
	}
	bodyStart := i + 10 + hdrEnd + 5
	end := len(s) // no footer: mask to the end, a truncated key is still a key
	if f := strings.Index(s[bodyStart:], "-----END"); f >= 0 {
		end = bodyStart + f + 8
		if g := strings.Index(s[end:min(len(s), end+120)], "-----"); g >= 0 {
			end += g + 5
		}
	}
	sc.add(Secret, i, end)
	return end
}

// randomCase tells random mixed-case letters ("CwVDDZBnipgIfQ") from
// identifiers ("customerOrderId", "changeme"): random text switches case
// about every other letter, words about every five or six.
func randomCase(v string) bool {
	if len(v) < 12 {
		return false
	}
	switches := 0
	for i := 1; i < len(v); i++ {
		if isUpper(v[i]) != isUpper(v[i-1]) {
			switches++
		}
	}
	return float64(switches) >= 0.4*float64(len(v)-1)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}
