package identity

import (
	"strings"

	"github.com/gatehouse/gatehouse/internal/access"
)

// maxActDepth bounds the RFC 8693 delegation chain; real chains are one or
// two links deep.
const maxActDepth = 16

// toPrincipal maps verified claims to a Principal. Claims with the wrong type
// are errors rather than ignored: a groups claim that cannot be read must not
// silently become "no groups" in one place and something else in another.
func toPrincipal(cfg IssuerConfig, c map[string]any) (*access.Principal, error) {
	sub, ok := c["sub"].(string)
	if !ok || sub == "" {
		return nil, tokenErr("token has no sub (subject) claim")
	}
	groups, err := readGroups(c, cfg.GroupsClaim)
	if err != nil {
		return nil, err
	}
	clientID, err := readClientID(c, cfg.ClientIDClaim)
	if err != nil {
		return nil, err
	}
	act, err := readAct(c["act"])
	if err != nil {
		return nil, err
	}
	p := &access.Principal{
		Issuer:   cfg.URL,
		Subject:  sub,
		Groups:   groups,
		ClientID: clientID,
		Act:      act,
		Claims:   c,
	}
	if exp, ok, _ := numericDate(c, "exp"); ok {
		p.Expiry = exp
	}
	return p, nil
}

// readGroups accepts an array of strings or one string separated by spaces
// and/or commas (some IdPs send "a b", others "a,b").
func readGroups(c map[string]any, name string) ([]string, error) {
	switch v := lookupClaim(c, name).(type) {
	case nil:
		return nil, nil
	case string:
		return splitList(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, tokenErr("token %s claim must be an array of strings or a string", quoteClaim(name))
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, tokenErr("token %s claim must be an array of strings or a string", quoteClaim(name))
}

// lookupClaim reads a claim by name; a dotted name ("realm_access.roles")
// descends into nested objects, as Keycloak and others nest roles. A claim
// whose own name contains a dot is found first.
func lookupClaim(c map[string]any, name string) any {
	if v, ok := c[name]; ok {
		return v
	}
	cur := any(c)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// splitList splits a space- and/or comma-separated list, dropping empties.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n'
	})
}

func readClientID(c map[string]any, name string) (string, error) {
	names := []string{"client_id", "azp"}
	if name != "" {
		names = []string{name}
	}
	for _, n := range names {
		switch v := lookupClaim(c, n).(type) {
		case nil:
			continue
		case string:
			if v != "" {
				return v, nil
			}
		default:
			return "", tokenErr("token %s claim must be a string", quoteClaim(n))
		}
	}
	return "", nil
}

// readAct flattens nested RFC 8693 §4.1 act claims. The outermost act is the
// current actor, so it comes first; each nested act is the one before it.
func readAct(raw any) ([]access.Actor, error) {
	var chain []access.Actor
	for raw != nil {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, tokenErr("token act claim must be a JSON object")
		}
		if len(chain) == maxActDepth {
			return nil, tokenErr("token act chain is deeper than %d", maxActDepth)
		}
		var a access.Actor
		for field, dst := range map[string]*string{"sub": &a.Subject, "iss": &a.Issuer, "client_id": &a.ClientID} {
			switch v := m[field].(type) {
			case nil:
			case string:
				*dst = v
			default:
				return nil, tokenErr("token act %s must be a string", field)
			}
		}
		if a.Subject == "" && a.ClientID == "" {
			return nil, tokenErr("token act claim names no actor (no sub or client_id)")
		}
		chain = append(chain, a)
		raw = m["act"]
	}
	return chain, nil
}
