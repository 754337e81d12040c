package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/access"
)

// Error is one problem in a policy definition. Parse and ParseFile return
// every problem they find, joined with errors.Join and ordered by line.
type Error struct {
	File    string // "" when the policies did not come from a file
	Line    int    // 1-based; 0 when unknown
	Key     string // key path, e.g. "policies[0].rules[1].deny"
	Policy  string // policy name, "" when unknown
	Rule    int    // 1-based rule number, 0 when the problem is not in a rule
	Problem string
}

// Error formats as `file:line: key (policy "p", rule 2): problem`,
// leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
	}
	switch {
	case e.Policy != "" && e.Rule > 0:
		fmt.Fprintf(&b, " (policy %q, rule %d)", e.Policy, e.Rule)
	case e.Policy != "":
		fmt.Fprintf(&b, " (policy %q)", e.Policy)
	}
	if e.Key != "" || e.Policy != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// maxNodes bounds the work a hostile or broken policies file can cause.
const maxNodes = 100_000

var (
	policyNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	connNameRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)
)

// ParseFile reads a standalone policies file: a mapping whose only key is
// `policies`, or the bare list. An empty file holds no policies.
func ParseFile(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseBytes(path, data)
}

// ParseBytes is ParseFile for data already read; file names it in errors.
func ParseBytes(file string, data []byte) (*Set, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Set{}, nil
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(file, err)
		}
		return nil, &Error{File: file, Line: extra.Line, Problem: "only one YAML document is allowed"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.MappingNode {
		// A standalone file holds nothing but policies: any other key is
		// a mistake (perhaps gatehouse.yaml given by accident).
		for i := 0; i+1 < len(root.Content); i += 2 {
			if k := root.Content[i]; k.Value != "policies" {
				return nil, &Error{File: file, Line: k.Line, Key: k.Value, Problem: "unknown key (a policies file holds only `policies:`)"}
			}
		}
	}
	return Parse(file, root)
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into an Error with its line.
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Problem: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Problem: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// Parse compiles policies from a YAML node: the list under `policies:`
// (what config.Config.Policies holds), or a document or mapping with a
// `policies` key (other keys are the caller's and are ignored). A nil or
// null node holds no policies. file names the source in errors.
func Parse(file string, node *yaml.Node) (*Set, error) {
	p := &parser{file: file, budget: maxNodes}
	set := p.parse(node)
	if err := p.err(); err != nil {
		return nil, err
	}
	return set, nil
}

// Merge concatenates sets (for example the policies in gatehouse.yaml and
// those of the policies file) in order. Policy names must stay unique.
func Merge(sets ...*Set) (*Set, error) {
	out := &Set{}
	seen := map[string]bool{}
	for _, s := range sets {
		if s == nil {
			continue
		}
		for _, p := range s.policies {
			if seen[p.name] {
				return nil, fmt.Errorf("policy %q is defined twice", p.name)
			}
			seen[p.name] = true
			out.policies = append(out.policies, p)
		}
	}
	return out, nil
}

// CheckConnections reports policies that name connections known() does
// not know. A misspelt connection name would silently keep a policy from
// ever applying, so the gateway calls this after loading its connections.
func (s *Set) CheckConnections(known func(name string) bool) error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, p := range s.policies {
		for i, c := range p.connections {
			if c != "*" && !known(c) {
				errs = append(errs, &Error{File: p.file, Line: p.connLines[i], Key: p.key + ".connections", Policy: p.name,
					Problem: fmt.Sprintf("unknown connection %q", c)})
			}
		}
	}
	return errors.Join(errs...)
}

type parser struct {
	file   string
	budget int
	errs   []*Error
	// compiled caches programs by condition text: the same condition
	// (typically through YAML aliases) is compiled once.
	compiled map[string]compiled
	// tooLarge is set when the node budget ran out; the walk stopped, so
	// other problems found are artifacts and only this one is reported.
	tooLarge bool
}

type compiled struct {
	prg cel.Program
	rel bool // the condition reads what is behind views
	iss *cel.Issues
	err error
}

func (p *parser) add(n *yaml.Node, key, policy string, rule int, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Policy: policy, Rule: rule, Problem: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error {
	if p.tooLarge {
		return &Error{File: p.file, Problem: fmt.Sprintf("policies are too large or expand too far through aliases (more than %d YAML nodes)", maxNodes)}
	}
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool {
		li, lj := p.errs[i].Line, p.errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	// Past a screenful the rest are usually consequences of the first.
	const maxErrors = 50
	errs := make([]error, 0, min(len(p.errs), maxErrors+1))
	for i, e := range p.errs {
		if i == maxErrors {
			errs = append(errs, fmt.Errorf("… and %d more problems", len(p.errs)-maxErrors))
			break
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// node follows aliases and charges every node visited to the budget, so
// an alias bomb stops at maxNodes instead of expanding without bound. It
// returns nil once the budget is spent.
func (p *parser) node(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
		p.budget--
	}
	p.budget--
	if p.budget == 0 {
		p.tooLarge = true
	}
	if p.budget <= 0 || n == nil {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func (p *parser) parse(n *yaml.Node) *Set {
	set := &Set{}
	if isNull(n) {
		return set
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return set
		}
		n = n.Content[0]
	}
	if n = p.node(n); n == nil {
		return set
	}
	if n.Kind == yaml.MappingNode {
		var list *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "policies" {
				list = n.Content[i+1]
			}
		}
		if list == nil {
			return set
		}
		if n = p.node(list); n == nil {
			return set
		}
	}
	if isNull(n) {
		return set
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, "policies", "", 0, "must be a list of policies")
		return set
	}
	names := map[string]int{}
	for i, item := range n.Content {
		key := fmt.Sprintf("policies[%d]", i)
		if item = p.node(item); item == nil {
			continue
		}
		cp, ok := p.policy(item, key)
		if cp == nil {
			continue
		}
		if first, dup := names[cp.name]; dup && cp.name != "" {
			p.add(item, key+".name", cp.name, 0, "duplicate policy name (first defined at policies[%d])", first)
			continue
		}
		names[cp.name] = i
		if ok {
			set.policies = append(set.policies, cp)
		}
	}
	if len(p.errs) > 0 {
		return nil
	}
	return set
}

// fields walks a mapping, calling fn for each known key and reporting
// unknown and duplicate keys. It returns false if n is not a mapping.
func (p *parser) fields(n *yaml.Node, key, policy string, rule int, known []string, fn func(k string, v *yaml.Node, kn *yaml.Node)) bool {
	if n = p.node(n); n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		p.add(n, key, policy, rule, "must be a mapping")
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, v := p.node(n.Content[i]), p.node(n.Content[i+1])
		if kn == nil || v == nil {
			continue
		}
		k := kn.Value
		sub := key + "." + k
		if !slices.Contains(known, k) {
			p.add(kn, sub, policy, rule, "unknown key (known keys: %s)", strings.Join(known, ", "))
			continue
		}
		if seen[k] {
			p.add(kn, sub, policy, rule, "duplicate key")
			continue
		}
		seen[k] = true
		fn(k, v, kn)
	}
	return true
}

// scalar returns a string scalar's value.
func (p *parser) scalar(n *yaml.Node, key, policy string, rule int) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.add(n, key, policy, rule, "must be a string")
		return "", false
	}
	return n.Value, true
}

// list returns a list of strings; a single scalar counts as a list of one.
func (p *parser) list(n *yaml.Node, key, policy string, rule int) ([]string, []int, bool) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return []string{n.Value}, []int{n.Line}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, key, policy, rule, "must be a list of strings")
		return nil, nil, false
	}
	var out []string
	var lines []int
	ok := true
	for i, item := range n.Content {
		sub := fmt.Sprintf("%s[%d]", key, i)
		if item = p.node(item); item == nil {
			ok = false
			continue
		}
		v, good := p.scalar(item, sub, policy, rule)
		if !good {
			ok = false
			continue
		}
		out = append(out, v)
		lines = append(lines, item.Line)
	}
	return out, lines, ok
}

var policyKeys = []string{"name", "description", "connections", "principals", "rules", "default", "masking"}

// policy compiles one policy; ok is false when it has problems (cp is
// still returned when its name is known, for the duplicate-name check).
func (p *parser) policy(n *yaml.Node, key string) (cp *compiledPolicy, ok bool) {
	cp = &compiledPolicy{file: p.file, key: key, deflt: Deny}
	// The name is read first so every other problem can name the policy.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				cp.name = n.Content[i+1].Value
			}
		}
	}
	start := len(p.errs)
	var haveName, haveConns, havePrincipals bool
	var rulesNode *yaml.Node
	ok = p.fields(n, key, cp.name, 0, policyKeys, func(k string, v, kn *yaml.Node) {
		sub := key + "." + k
		switch k {
		case "name":
			if s, ok := p.scalar(v, sub, "", 0); ok {
				if !policyNameRe.MatchString(s) {
					p.add(v, sub, "", 0, "must be 1-63 characters of A-Z, a-z, 0-9, _, . and -, starting with a letter or digit (got %q)", s)
				}
				haveName = true
			}
		case "description":
			p.scalar(v, sub, cp.name, 0)
		case "connections":
			haveConns = true
			names, lines, _ := p.list(v, sub, cp.name, 0)
			if len(names) == 0 && v.Kind == yaml.SequenceNode {
				p.add(v, sub, cp.name, 0, `must name at least one connection (or "*" for all)`)
			}
			for i, c := range names {
				if c != "*" && !connNameRe.MatchString(c) {
					p.add(v, fmt.Sprintf("%s[%d]", sub, i), cp.name, 0, `must be a connection name or "*" (got %q)`, c)
				}
			}
			cp.connections, cp.connLines = names, lines
		case "principals":
			havePrincipals = true
			sels, _, _ := p.list(v, sub, cp.name, 0)
			if len(sels) == 0 && v.Kind == yaml.SequenceNode {
				p.add(v, sub, cp.name, 0, `must name at least one principal (or "*" for everyone)`)
			}
			for i, s := range sels {
				if !access.ValidSelector(s) {
					p.add(v, fmt.Sprintf("%s[%d]", sub, i), cp.name, 0, `must be "group:NAME", "sub:SUBJECT", "client:CLIENT_ID" or "*" (got %q)`, s)
				}
			}
			cp.principals = sels
		case "rules":
			rulesNode = v
		case "default":
			if s, ok := p.scalar(v, sub, cp.name, 0); ok {
				switch s {
				case "allow":
					cp.deflt = Allow
				case "deny":
					cp.deflt = Deny
				default:
					p.add(v, sub, cp.name, 0, "must be allow or deny (got %q)", s)
				}
			}
		case "masking":
			cp.mask, cp.hasMask = p.masking(v, sub, cp.name)
		}
	})
	if !ok {
		return nil, false
	}
	if !haveName {
		p.add(n, key+".name", "", 0, "required")
	}
	if !haveConns {
		p.add(n, key+".connections", cp.name, 0, `required (connection names, or "*" for all)`)
	}
	if !havePrincipals {
		p.add(n, key+".principals", cp.name, 0, `required (principal selectors, or "*" for everyone)`)
	}
	if rulesNode != nil {
		cp.rules = p.rules(rulesNode, key+".rules", cp.name)
	}
	return cp, len(p.errs) == start
}

func (p *parser) rules(n *yaml.Node, key, policy string) []compiledRule {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n, key, policy, 0, "must be a list of rules")
		return nil
	}
	out := make([]compiledRule, 0, len(n.Content))
	names := map[string]bool{}
	for i, item := range n.Content {
		r, ok := p.rule(item, fmt.Sprintf("%s[%d]", key, i), policy, i+1)
		if !ok {
			continue
		}
		if names[r.name] {
			p.add(item, fmt.Sprintf("%s[%d].name", key, i), policy, i+1, "duplicate rule name %q", r.name)
			continue
		}
		names[r.name] = true
		out = append(out, r)
	}
	return out
}

var ruleKeys = []string{"name", "deny", "review", "allow", "message", "approvers", "timeout", "min_approvals", "remember"}

func (p *parser) rule(n *yaml.Node, key, policy string, num int) (compiledRule, bool) {
	r := compiledRule{name: fmt.Sprintf("%s/rule-%d", policy, num)}
	start := len(p.errs)
	var condNode, approversNode, timeoutNode, minNode, rememberNode *yaml.Node
	var verbs []string
	ok := p.fields(n, key, policy, num, ruleKeys, func(k string, v, kn *yaml.Node) {
		sub := key + "." + k
		switch k {
		case "name":
			if s, ok := p.scalar(v, sub, policy, num); ok {
				if !policyNameRe.MatchString(s) {
					p.add(v, sub, policy, num, "must be 1-63 characters of A-Z, a-z, 0-9, _, . and -, starting with a letter or digit (got %q)", s)
				}
				r.name = s
			}
		case "deny", "review", "allow":
			verbs = append(verbs, k)
			condNode = v
			r.verdict = map[string]Verdict{"deny": Deny, "review": Review, "allow": Allow}[k]
		case "message":
			r.message, _ = p.scalar(v, sub, policy, num)
		case "approvers":
			approversNode = v
			sels, _, _ := p.list(v, sub, policy, num)
			for i, s := range sels {
				if !access.ValidSelector(s) {
					p.add(v, fmt.Sprintf("%s[%d]", sub, i), policy, num, `must be "group:NAME", "sub:SUBJECT", "client:CLIENT_ID" or "*" (got %q)`, s)
				}
			}
			r.approvers = sels
		case "timeout":
			timeoutNode = v
			if s, ok := p.scalar(v, sub, policy, num); ok {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					p.add(v, sub, policy, num, "must be a positive duration such as 30s or 5m (got %q)", s)
				}
				r.timeout = d
			}
		case "min_approvals":
			minNode = v
			if s, ok := p.scalar(v, sub, policy, num); ok {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 || n > 10 {
					p.add(v, sub, policy, num, "must be a whole number from 1 to 10 (got %q)", s)
				}
				r.minApprovals = n
			}
		case "remember":
			rememberNode = v
			if s, ok := p.scalar(v, sub, policy, num); ok {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 || d > 24*time.Hour {
					p.add(v, sub, policy, num, "must be a positive duration of at most 24h such as 10m (got %q)", s)
				}
				r.remember = d
			}
		}
	})
	if !ok {
		return r, false
	}
	switch len(verbs) {
	case 0:
		p.add(n, key, policy, num, "needs one of deny, review or allow (with a CEL condition)")
		return r, false
	case 1:
	default:
		p.add(n, key, policy, num, "has %s: a rule has exactly one of deny, review or allow", strings.Join(verbs, " and "))
		return r, false
	}
	if r.verdict != Review {
		if approversNode != nil {
			p.add(approversNode, key+".approvers", policy, num, "only a review rule has approvers")
		}
		if timeoutNode != nil {
			p.add(timeoutNode, key+".timeout", policy, num, "only a review rule has a timeout")
		}
		if minNode != nil {
			p.add(minNode, key+".min_approvals", policy, num, "only a review rule has min_approvals")
		}
		if rememberNode != nil {
			p.add(rememberNode, key+".remember", policy, num, "only a review rule has remember")
		}
	}
	condKey := key + "." + verbs[0]
	expr, good := p.scalar(condNode, condKey, policy, num)
	if good && strings.TrimSpace(expr) == "" {
		p.add(condNode, condKey, policy, num, "the condition is empty (write true to match everything)")
		good = false
	}
	if good {
		r.expr = strings.TrimSpace(expr)
		c, seen := p.compiled[expr]
		if !seen {
			c.prg, c.rel, c.iss, c.err = compile(expr)
			if p.compiled == nil {
				p.compiled = map[string]compiled{}
			}
			p.compiled[expr] = c
		}
		prg, iss, err := c.prg, c.iss, c.err
		switch {
		case iss != nil:
			for _, e := range iss.Errors() {
				line := condNode.Line + e.Location.Line() - 1
				if condNode.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					line++ // a block scalar starts on the line after its indicator
				}
				at := fmt.Sprintf("column %d", e.Location.Column()+1)
				if strings.Contains(expr, "\n") {
					at = fmt.Sprintf("line %d, column %d", e.Location.Line(), e.Location.Column()+1)
				}
				msg := strings.TrimSuffix(e.Message, " (in container '')")
				p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: condKey, Policy: policy, Rule: num,
					Problem: fmt.Sprintf("invalid CEL condition at %s: %s", at, msg)})
			}
		case err != nil:
			p.add(condNode, condKey, policy, num, "%v", err)
		default:
			r.prg, r.readsRelations = prg, c.rel
		}
	}
	return r, len(p.errs) == start
}

var maskingKeys = []string{"columns", "entities", "derived", "predicates"}

func (p *parser) masking(n *yaml.Node, key, policy string) (MaskPlan, bool) {
	m := MaskPlan{Derived: DerivedDeny, Predicates: PredicatesDeny}
	if isNull(n) {
		return m, false
	}
	p.fields(n, key, policy, 0, maskingKeys, func(k string, v, kn *yaml.Node) {
		sub := key + "." + k
		switch k {
		case "columns":
			if v.Kind != yaml.SequenceNode {
				p.add(v, sub, policy, 0, "must be a list of {column, method}")
				return
			}
			for i, item := range v.Content {
				m.Columns = append(m.Columns, p.columnRule(item, fmt.Sprintf("%s[%d]", sub, i), policy)...)
			}
		case "entities":
			ents, _, _ := p.list(v, sub, policy, 0)
			for i, e := range ents {
				if !slices.Contains(Entities, e) {
					p.add(v, fmt.Sprintf("%s[%d]", sub, i), policy, 0, "must be one of %s (got %q)", strings.Join(Entities, ", "), e)
					continue
				}
				if !slices.Contains(m.Entities, e) {
					m.Entities = append(m.Entities, e)
				}
			}
			slices.Sort(m.Entities)
		case "derived":
			if s, ok := p.scalar(v, sub, policy, 0); ok {
				if s != DerivedMask && s != DerivedDeny {
					p.add(v, sub, policy, 0, "must be mask or deny (got %q)", s)
				}
				m.Derived = s
			}
		case "predicates":
			if s, ok := p.scalar(v, sub, policy, 0); ok {
				if s != PredicatesAllow && s != PredicatesDeny {
					p.add(v, sub, policy, 0, "must be deny or allow (got %q)", s)
				}
				m.Predicates = s
			}
		}
	})
	return m, true
}

func (p *parser) columnRule(n *yaml.Node, key, policy string) []ColumnRule {
	var c ColumnRule
	var haveCol, haveMethod bool
	ok := p.fields(n, key, policy, 0, []string{"column", "method"}, func(k string, v, kn *yaml.Node) {
		sub := key + "." + k
		s, ok := p.scalar(v, sub, policy, 0)
		if !ok {
			return
		}
		switch k {
		case "column":
			haveCol = true
			if !validColumnPattern(s) {
				p.add(v, sub, policy, 0, `must be "schema.table.column", "table.column" or "column", each part a name or glob (got %q)`, s)
			}
			c.Pattern = strings.ToLower(s)
		case "method":
			haveMethod = true
			if !slices.Contains(Methods, s) {
				p.add(v, sub, policy, 0, "must be one of %s (got %q)", strings.Join(Methods, ", "), s)
			}
			c.Method = s
		}
	})
	if !ok {
		return nil
	}
	if !haveCol {
		p.add(n, key+".column", policy, 0, "required")
	}
	if !haveMethod {
		p.add(n, key+".method", policy, 0, "required (one of %s)", strings.Join(Methods, ", "))
	}
	return []ColumnRule{c}
}
