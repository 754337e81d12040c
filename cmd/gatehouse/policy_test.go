package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's own example policies and fixtures: CI runs them here, so
// a change to the policy engine, the SQL inspector or the examples that
// changes a decision fails the build.
const (
	examplePolicies = "../../examples/policies/policies.yaml"
	exampleFixtures = "../../examples/policies/fixtures"
)

func TestPolicyTestExamples(t *testing.T) {
	r := gh(t, nil, "", "policy", "test", exampleFixtures, "--policies", examplePolicies)
	if r.code != 0 || strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, " 0 failed") {
		t.Fatalf("example fixtures: %+v", r)
	}
	r = gh(t, nil, "", "policy", "test", exampleFixtures, "--policies", examplePolicies, "-o", "json")
	var out struct {
		Cases []struct {
			Name     string `json:"name"`
			Pass     bool   `json:"pass"`
			Decision string `json:"decision"`
		} `json:"cases"`
		Passed, Failed int
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || out.Failed != 0 || out.Passed < 15 || len(out.Cases) != out.Passed {
		t.Fatalf("json: %+v %v", r, err)
	}
}

// copyFixtures copies the example fixtures into a temporary directory.
func copyFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(exampleFixtures)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(exampleFixtures, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicyTestFailureAndUpdate(t *testing.T) {
	dir := copyFixtures(t)
	wrong := `# a deliberately wrong fixture
- name: drop is allowed (it is not)
  principal: {subject: bot-1, groups: [agents]}
  connection: orders
  sql: DROP TABLE orders
  expect: {decision: allow, mask: []}
- name: wrong rule and mask
  principal: {subject: bot-1, groups: [agents]}
  connection: orders
  sql: SELECT id FROM orders
  expect: {decision: allow, rule: nope, mask: [{column: x, method: hash}]}
`
	path := filepath.Join(dir, "zz-wrong.yaml")
	if err := os.WriteFile(path, []byte(wrong), 0o644); err != nil {
		t.Fatal(err)
	}
	r := gh(t, nil, "", "policy", "test", dir, "--policies", examplePolicies)
	if r.code != exitError || strings.Count(r.stdout, "FAIL") != 2 ||
		!strings.Contains(r.stdout, `decision: want "allow", got "deny"`) ||
		!strings.Contains(r.stdout, `rule: want "nope", got "reads"`) ||
		!strings.Contains(r.stdout, "mask: want [x=hash], got [public.customers.card_number=last4, *.email=redact]") ||
		!strings.Contains(r.stderr, "2 of") {
		t.Fatalf("wrong fixture: %+v", r)
	}

	// --update rewrites the expect blocks (keeping comments), after which
	// everything passes.
	r = gh(t, nil, "", "policy", "test", dir, "--policies", examplePolicies, "--update")
	if r.code != 0 || strings.Count(r.stdout, "UPDATED") != 2 {
		t.Fatalf("update: %+v", r)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"# a deliberately wrong fixture", "decision: deny", "rule: no-destructive-ddl", "destructive DDL is not allowed", "rule: reads", "method: last4"} {
		if !strings.Contains(got, want) {
			t.Errorf("updated fixture lacks %q:\n%s", want, got)
		}
	}
	r = gh(t, nil, "", "policy", "test", dir, "--policies", examplePolicies)
	if r.code != 0 {
		t.Fatalf("after update: %+v", r)
	}
	// Updating fixtures that already pass leaves them byte for byte.
	before, _ := os.ReadFile(filepath.Join(dir, "agents.yaml"))
	if r = gh(t, nil, "", "policy", "test", dir, "--policies", examplePolicies, "--update"); r.code != 0 {
		t.Fatalf("second update: %+v", r)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "agents.yaml"))
	if string(before) != string(after) {
		t.Fatalf("update of passing fixtures changed them:\n%s", after)
	}
}

func TestPolicyTestConfig(t *testing.T) {
	// Policies reached through gatehouse.yaml's policies_file decide the same.
	dir := t.TempDir()
	abs, err := filepath.Abs(examplePolicies)
	if err != nil {
		t.Fatal(err)
	}
	cfg := "listen: {api: 127.0.0.1:0}\npolicies_file: " + abs + "\nconnections:\n  - {name: orders, type: postgres, address: 127.0.0.1:5432, database: orders, username: app}\n  - {name: billing, type: postgres, address: 127.0.0.1:5432, database: billing, username: app}\n"
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := gh(t, nil, "", "policy", "test", exampleFixtures, "--config", cfgPath)
	if r.code != 0 {
		t.Fatalf("--config: %+v", r)
	}
}

func TestPolicyUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"policy", "test", exampleFixtures},
		{"policy", "test", exampleFixtures, "--policies", examplePolicies, "--config", "x.yaml"},
		{"policy", "explain", "--policies", examplePolicies, "--connection", "orders", "SELECT 1"},
		{"policy", "test", exampleFixtures, "--policies", examplePolicies, "-o", "xml"},
	} {
		if r := gh(t, nil, "", args...); r.code != exitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
	// A broken policies file is an error naming it, not a pass.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("policies:\n  - name: x\n    connections: [orders]\n    principals: ['*']\n    rules:\n      - deny: 'statement.kind =='\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := gh(t, nil, "", "policy", "test", exampleFixtures, "--policies", bad); r.code != exitError || !strings.Contains(r.stderr, "bad.yaml") {
		t.Fatalf("bad policies: %+v", r)
	}
}

func TestPolicyExplain(t *testing.T) {
	r := gh(t, nil, "", "policy", "explain", "--policies", examplePolicies, "--subject", "bot-1", "--group", "agents",
		"--connection", "orders", "SELECT id FROM orders; DELETE FROM orders")
	if r.code != 0 {
		t.Fatalf("explain: %+v", r)
	}
	for _, want := range []string{"kind:", "delete", "public.orders", "agents-on-orders: no-unbounded-writes", "matched: deny",
		"analysts-reporting", "not applicable", "gateway decision: deny", "rule:    no-unbounded-writes", "UPDATE/DELETE without WHERE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = gh(t, nil, "", "policy", "explain", "--policies", examplePolicies, "--subject", "ann", "--group", "analysts",
		"--connection", "orders", "-o", "json", "SELECT lower(email) FROM customers WHERE email LIKE '%x'")
	var ex struct {
		Statements []struct {
			Facts struct {
				Kind string `json:"Kind"`
			} `json:"facts"`
			Rule       string   `json:"rule"`
			ColumnUses []string `json:"column_uses"`
		} `json:"statements"`
		Decision struct {
			Rule string `json:"rule"`
			Mask struct {
				ReadsMasked bool `json:"reads_masked"`
			} `json:"mask"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil || len(ex.Statements) != 1 || ex.Statements[0].Facts.Kind != "select" ||
		ex.Statements[0].Rule != "read-only" || ex.Decision.Rule != "read-only" || !ex.Decision.Mask.ReadsMasked ||
		!strings.Contains(strings.Join(ex.Statements[0].ColumnUses, ","), "customers.email (where)") {
		t.Fatalf("explain json: %+v %v\n%s", ex, err, r.stdout)
	}

	// Text that does not parse: the error, and the gateway's refusal.
	r = gh(t, nil, "", "policy", "explain", "--policies", examplePolicies, "--subject", "bot-1", "--group", "agents",
		"--connection", "orders", "SELEC 1")
	if r.code != 0 || !strings.Contains(r.stdout, "parse error: syntax error") || !strings.Contains(r.stdout, "gatehouse/parse") {
		t.Fatalf("explain parse error: %+v", r)
	}
}
