package main

// `gatehouse policy test` and `gatehouse policy explain` decide statements
// offline with the gateway's own checkpoint (checkpoint.Decide), so what they
// print is what the gateway would do: the same statement facts, the same
// combining of policies, the same refusal of reviews and the same masking
// checks. Only the connection access list is left out (everyone may
// connect): it is not what policies are about.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/checkpoint"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/policy"
	"github.com/gatehouse/gatehouse/internal/sqlinspect"
)

// policySource is the --policies/--config pair both commands take.
type policySource struct {
	policies, config string
}

func (s *policySource) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.policies, "policies", "", "standalone policies file")
	cmd.Flags().StringVar(&s.config, "config", "", "gatehouse.yaml (its policies and its policies_file)")
}

// load compiles the policies exactly as the gateway does at startup.
func (s *policySource) load() (*policy.Set, error) {
	switch {
	case s.policies != "" && s.config != "":
		return nil, usagef("give --policies or --config, not both")
	case s.policies != "":
		return policy.ParseFile(s.policies)
	case s.config != "":
		cfg, err := config.Load(s.config)
		if err != nil {
			return nil, err
		}
		set, err := policy.Parse(cfg.Path, cfg.Policies)
		if err != nil {
			return nil, err
		}
		if cfg.PoliciesFile != "" {
			fs, err := policy.ParseFile(cfg.PoliciesFile)
			if err != nil {
				return nil, err
			}
			return policy.Merge(set, fs)
		}
		return set, nil
	}
	return nil, usagef("give --policies FILE or --config FILE")
}

// offlineCheckpoint is the gateway's checkpoint with an access list that
// lets everyone connect, no audit log and no metrics. Approvals are on, as
// in the gateway, so review rules decide "hold" (nothing is ever held:
// Decide has no side effects).
func offlineCheckpoint(set *policy.Set) *checkpoint.Checkpoint {
	acl := func(string) ([]string, bool) { return []string{"*"}, true }
	return checkpoint.New(nil, acl, nil).WithPolicies(policy.NewReloadable(set), nil).
		WithApprovals(&checkpoint.Approvals{})
}

const offlineSession = "policy-test"

func statementAction(subject string, groups []string, conn, sql string) *access.Action {
	return &access.Action{
		Session: &access.Session{ID: offlineSession,
			Principal: &access.Principal{Subject: subject, Groups: groups},
			Target:    access.Target{Name: conn, Type: "postgres"}},
		Kind: access.ActionStatement, Statement: sql, Protocol: "simple",
	}
}

func (c *cli) newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test and explain statement policies offline",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.newPolicyTestCmd(), c.newPolicyExplainCmd())
	return cmd
}

// --- policy test ---

// fixtureCase is one case of a fixture file.
type fixtureCase struct {
	Name      string `yaml:"name" json:"name"`
	Principal struct {
		Subject string   `yaml:"subject" json:"subject"`
		Groups  []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	} `yaml:"principal" json:"principal"`
	Connection string      `yaml:"connection" json:"connection"`
	SQL        string      `yaml:"sql" json:"sql"`
	Expect     expectation `yaml:"expect" json:"expect"`
}

// expectation is what a case expects. Decision is always compared; Rule and
// MessageContains when set; Mask when the key is present (`mask: []` expects
// no masking); ReadsMasked when set.
type expectation struct {
	Decision        string        `yaml:"decision" json:"decision"`
	Rule            string        `yaml:"rule,omitempty" json:"rule,omitempty"`
	MessageContains string        `yaml:"message_contains,omitempty" json:"message_contains,omitempty"`
	Mask            *[]maskColumn `yaml:"mask,omitempty" json:"mask,omitempty"`
	ReadsMasked     *bool         `yaml:"reads_masked,omitempty" json:"reads_masked,omitempty"`
}

type maskColumn struct {
	Column string `yaml:"column" json:"column"`
	Method string `yaml:"method" json:"method"`
}

// caseResult is one line of `policy test` output.
type caseResult struct {
	File string `json:"file"`
	Name string `json:"name"`
	Pass bool   `json:"pass"`
	// Decision is "allow", "deny" or "hold" (Actual.verdict is the number).
	Decision string   `json:"decision"`
	Diffs    []string `json:"diffs,omitempty"`
	Actual   any      `json:"actual"`
}

func (c *cli) newPolicyTestCmd() *cobra.Command {
	var src policySource
	var update bool
	var output string
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run policy fixtures (principal + connection + SQL → expected decision, rule and mask plan)",
		Long: `Runs every fixture file (*.yaml, *.yml) in DIR against the policies and
prints PASS or FAIL per case; exits 1 if any case fails. A fixture file is a
list of cases:

  - name: agents may read orders
    principal: {subject: bot-1, groups: [agents]}
    connection: orders
    sql: SELECT id FROM orders
    expect:
      decision: allow            # allow | deny | hold (a review rule: held for approval)
      rule: agents-on-orders/rule-5
      message_contains: "..."    # part of the refusal message
      mask: [{column: "*.email", method: redact}]   # [] = nothing masked

--update rewrites each case's expect block from the actual decision
(golden files): review the diff before committing it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			set, err := src.load()
			if err != nil {
				return err
			}
			files, err := fixtureFiles(args[0])
			if err != nil {
				return err
			}
			sqlinspect.Warm()
			cp := offlineCheckpoint(set)
			var results []caseResult
			for _, f := range files {
				rs, err := runFixtureFile(cp, f, update)
				if err != nil {
					return err
				}
				results = append(results, rs...)
			}
			return c.printTestResults(results, output, update)
		},
	}
	src.addFlags(cmd)
	cmd.Flags().BoolVar(&update, "update", false, "rewrite the expect blocks from the actual decisions")
	addOutputFlag(cmd, &output)
	return cmd
}

func fixtureFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no fixture files (*.yaml) in %s", dir)
	}
	sort.Strings(files)
	return files, nil
}

// runFixtureFile decides every case of one file. With update it rewrites the
// file's expect blocks in place, keeping everything else (comments included)
// as written.
func runFixtureFile(cp *checkpoint.Checkpoint, file string, update bool) ([]caseResult, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: a fixture file is a list of cases", file, list.Line)
	}
	var results []caseResult
	for i, n := range list.Content {
		var fc fixtureCase
		if err := n.Decode(&fc); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n.Line, err)
		}
		if fc.Name == "" {
			fc.Name = fmt.Sprintf("case %d", i+1)
		}
		if fc.Connection == "" || fc.SQL == "" {
			return nil, fmt.Errorf("%s:%d: case %q needs connection and sql", file, n.Line, fc.Name)
		}
		d := cp.Decide(statementAction(fc.Principal.Subject, fc.Principal.Groups, fc.Connection, fc.SQL))
		cp.EndSession(offlineSession) // no PREPAREd statement leaks into the next case
		diffs := compareDecision(fc.Expect, d)
		results = append(results, caseResult{File: file, Name: fc.Name, Pass: len(diffs) == 0, Decision: verdictName(d), Diffs: diffs, Actual: d})
		if update {
			if err := setExpect(n, actualExpectation(fc.Expect, d)); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, n.Line, err)
			}
		}
	}
	if update {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return nil, err
		}
		if !bytes.Equal(buf.Bytes(), data) {
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// verdictName is "allow", "deny" or "hold" (held for approval).
func verdictName(d access.Decision) string { return d.Verdict.String() }

func maskColumns(d access.Decision) []maskColumn {
	out := []maskColumn{}
	if d.Mask != nil {
		for _, m := range d.Mask.Columns {
			out = append(out, maskColumn{Column: m.Column, Method: m.Method})
		}
	}
	return out
}

// compareDecision lists the differences between what a case expects and
// what was decided, one "field: want X, got Y" per difference.
func compareDecision(e expectation, d access.Decision) []string {
	var diffs []string
	if got := verdictName(d); e.Decision != got {
		diffs = append(diffs, fmt.Sprintf("decision: want %q, got %q (%s)", e.Decision, got, d.Reason))
	}
	if e.Rule != "" && e.Rule != d.Rule {
		diffs = append(diffs, fmt.Sprintf("rule: want %q, got %q", e.Rule, d.Rule))
	}
	if e.MessageContains != "" && !strings.Contains(d.Reason, e.MessageContains) {
		diffs = append(diffs, fmt.Sprintf("message: want it to contain %q, got %q", e.MessageContains, d.Reason))
	}
	if e.Mask != nil {
		if got := maskColumns(d); !slices.Equal(*e.Mask, got) {
			diffs = append(diffs, fmt.Sprintf("mask: want %s, got %s", fmtMask(*e.Mask), fmtMask(got)))
		}
	}
	if e.ReadsMasked != nil {
		got := d.Mask != nil && d.Mask.ReadsMasked
		if *e.ReadsMasked != got {
			diffs = append(diffs, fmt.Sprintf("reads_masked: want %v, got %v", *e.ReadsMasked, got))
		}
	}
	return diffs
}

func fmtMask(m []maskColumn) string {
	if len(m) == 0 {
		return "[]"
	}
	parts := make([]string, len(m))
	for i, c := range m {
		parts[i] = c.Column + "=" + c.Method
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// actualExpectation is the expect block that d passes, keeping the old
// message_contains when it still holds.
func actualExpectation(old expectation, d access.Decision) expectation {
	e := expectation{Decision: verdictName(d), Rule: d.Rule}
	if !d.Allowed() {
		e.MessageContains = d.Reason
		if old.MessageContains != "" && strings.Contains(d.Reason, old.MessageContains) {
			e.MessageContains = old.MessageContains
		}
	}
	if d.Allowed() { // a refusal masks nothing: keep its block short
		m := maskColumns(d)
		e.Mask = &m
	}
	if d.Mask != nil && d.Mask.ReadsMasked || old.ReadsMasked != nil {
		rm := d.Mask != nil && d.Mask.ReadsMasked
		e.ReadsMasked = &rm
	}
	return e
}

// setExpect replaces (or adds) the expect key of a case mapping node.
func setExpect(n *yaml.Node, e expectation) error {
	var v yaml.Node
	if err := v.Encode(e); err != nil {
		return err
	}
	// Mask lists read best on one line each.
	for i := 0; i+1 < len(v.Content); i += 2 {
		if v.Content[i].Value == "mask" {
			v.Content[i+1].Style = yaml.FlowStyle
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "expect" {
			n.Content[i+1] = &v
			return nil
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "expect"}, &v)
	return nil
}

func (c *cli) printTestResults(results []caseResult, output string, update bool) error {
	failed := 0
	for _, r := range results {
		if !r.Pass {
			failed++
		}
	}
	if output == "json" {
		if err := printJSON(c.stdout, map[string]any{"cases": results, "passed": len(results) - failed, "failed": failed, "updated": update && failed > 0}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			status := "PASS"
			if !r.Pass {
				status = "FAIL"
				if update {
					status = "UPDATED"
				}
			}
			fmt.Fprintf(c.stdout, "%s  %s: %s\n", status, filepath.Base(r.File), r.Name)
			for _, d := range r.Diffs {
				fmt.Fprintf(c.stdout, "        %s\n", d)
			}
		}
		fmt.Fprintf(c.stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	}
	if failed > 0 && !update {
		return fmt.Errorf("%d of %d policy fixture cases failed", failed, len(results))
	}
	return nil
}

// --- policy explain ---

// explanation is `policy explain -o json`.
type explanation struct {
	Statements []explainedStatement `json:"statements"`
	ParseError string               `json:"parse_error,omitempty"`
	Decision   access.Decision      `json:"decision"`
}

type explainedStatement struct {
	Facts   policy.Statement `json:"facts"`
	Wrapped bool             `json:"wrapped,omitempty"` // inside EXPLAIN, PREPARE, COPY (query), …
	// ColumnUses are the column references with their clause, which the
	// masking checks use (predicates, derived values).
	ColumnUses []string      `json:"column_uses,omitempty"`
	Verdict    string        `json:"verdict"`
	Rule       string        `json:"rule,omitempty"`
	Message    string        `json:"message,omitempty"`
	Steps      []policy.Step `json:"steps"`
	Errors     []string      `json:"errors,omitempty"`
	MaskPlan   []maskColumn  `json:"mask,omitempty"`
}

func (c *cli) newPolicyExplainCmd() *cobra.Command {
	var src policySource
	var subject, conn, output string
	var groups []string
	cmd := &cobra.Command{
		Use:   "explain --subject S [--group G]... --connection C SQL",
		Short: "Show the statement facts, the decision path and the gateway's decision for one statement",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if subject == "" || conn == "" {
				return usagef("--subject and --connection are required")
			}
			set, err := src.load()
			if err != nil {
				return err
			}
			sqlinspect.Warm()
			a := statementAction(subject, groups, conn, args[0])
			ex := explainStatement(set, a)
			if output == "json" {
				return printJSON(c.stdout, ex)
			}
			printExplanation(c.stdout, ex)
			return nil
		},
	}
	src.addFlags(cmd)
	cmd.Flags().StringVar(&subject, "subject", "", "principal subject")
	cmd.Flags().StringArrayVar(&groups, "group", nil, "principal group (repeatable)")
	cmd.Flags().StringVar(&conn, "connection", "", "connection name")
	addOutputFlag(cmd, &output)
	return cmd
}

func explainStatement(set *policy.Set, a *access.Action) explanation {
	var ex explanation
	in := policy.InputFor(a, time.Now())
	facts, err := sqlinspect.Inspect(a.Statement)
	if err != nil {
		ex.ParseError = err.Error()
	} else {
		for i := range facts.Statements {
			st := &facts.Statements[i]
			ex.Statements = append(ex.Statements, explainOne(set, in, st, false))
			for w := st.Wraps; w != nil; w = w.Wraps {
				ex.Statements = append(ex.Statements, explainOne(set, in, w, true))
			}
			// A MERGE is decided as each of its actions too.
			for j := range st.Actions {
				ex.Statements = append(ex.Statements, explainOne(set, in, &st.Actions[j], true))
			}
		}
	}
	ex.Decision = offlineCheckpoint(set).Decide(a)
	return ex
}

func explainOne(set *policy.Set, in *policy.Input, st *sqlinspect.Statement, wrapped bool) explainedStatement {
	in.Statement = checkpoint.PolicyStatement(st)
	d, steps := set.Explain(in)
	es := explainedStatement{Facts: in.Statement, Wrapped: wrapped, Verdict: d.Verdict.String(),
		Rule: d.Rule, Message: d.Message, Steps: steps, Errors: d.Errors}
	for _, c := range st.Columns {
		use := c.Clause
		if c.Bare {
			use += ", bare"
		}
		name := c.Name
		if c.Star {
			name = "*"
		}
		if c.Table != "" {
			name = c.Table + "." + name
		}
		es.ColumnUses = append(es.ColumnUses, name+" ("+use+")")
	}
	for _, m := range d.Mask.Columns {
		es.MaskPlan = append(es.MaskPlan, maskColumn{Column: m.Pattern, Method: m.Method})
	}
	return es
}

func printExplanation(w io.Writer, ex explanation) {
	if ex.ParseError != "" {
		fmt.Fprintf(w, "parse error: %s\n\n", ex.ParseError)
	}
	for i, es := range ex.Statements {
		f := es.Facts
		title := fmt.Sprintf("statement %d", i+1)
		if es.Wrapped {
			title += " (wrapped)"
		}
		fmt.Fprintf(w, "%s: %s\n", title, cell(f.Text, 100))
		t := newTable(w)
		row(t, "  kind:", f.Kind+objectKindSuffix(f.ObjectKind))
		row(t, "  tables:", list(f.TablesQualified))
		row(t, "  tables written:", list(f.TablesWritten))
		row(t, "  columns:", list(es.ColumnUses))
		row(t, "  functions:", list(f.Functions))
		row(t, "  has_where:", fmt.Sprint(f.HasWhere))
		row(t, "  writes:", fmt.Sprint(f.Writes))
		if f.Analyze {
			row(t, "  analyze:", "true")
		}
		_ = t.Flush()
		fmt.Fprintln(w, "  decision path:")
		for _, s := range es.Steps {
			name := s.Policy
			if s.Rule != "" && !strings.HasPrefix(s.Rule, s.Policy+"/") {
				name = s.Policy + ": " + s.Rule
			} else if s.Rule != "" {
				name = s.Rule
			}
			fmt.Fprintf(w, "    %-40s %s\n", name, s.Outcome)
		}
		fmt.Fprintf(w, "  policy verdict: %s", es.Verdict)
		if es.Rule != "" {
			fmt.Fprintf(w, " (%s)", es.Rule)
		}
		fmt.Fprintln(w)
		for _, e := range es.Errors {
			fmt.Fprintf(w, "  condition error: %s\n", e)
		}
		fmt.Fprintln(w)
	}
	d := ex.Decision
	fmt.Fprintf(w, "gateway decision: %s\n", verdictName(d))
	if d.Rule != "" {
		fmt.Fprintf(w, "  rule:    %s\n", d.Rule)
	}
	if d.Reason != "" {
		fmt.Fprintf(w, "  message: %s\n", d.Reason)
	}
	if m := d.Mask; m != nil {
		fmt.Fprintf(w, "  mask:    %s\n", fmtMask(maskColumns(d)))
		if len(m.Entities) > 0 {
			fmt.Fprintf(w, "  entities: %s\n", strings.Join(m.Entities, ", "))
		}
		fmt.Fprintf(w, "  derived: %s, predicates: %s, reads masked: %v\n", orDefault(m.Derived, "deny"), orDefault(m.Predicates, "deny"), m.ReadsMasked)
	}
}

func objectKindSuffix(k string) string {
	if k == "" {
		return ""
	}
	return " (" + k + ")"
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
