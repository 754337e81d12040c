package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the expected results in testdata")

// decisionFile is the shape of testdata/decisions/*.yaml: policies, then
// cases of one input each with the decision expected (`want`, rewritten by
// -update).
type decisionFile struct {
	Policies yaml.Node      `yaml:"policies"`
	Cases    []decisionCase `yaml:"cases"`
}

type decisionCase struct {
	Name  string    `yaml:"name"`
	Input testInput `yaml:"input"`
	Want  want      `yaml:"want"`
}

// testInput mirrors Input with YAML names (Input itself carries CEL tags).
type testInput struct {
	Statement struct {
		Kind            string   `yaml:"kind"`
		ObjectKind      string   `yaml:"object_kind"`
		Tables          []string `yaml:"tables"`
		TablesQualified []string `yaml:"tables_qualified"`
		TablesWritten   []string `yaml:"tables_written"`
		Columns         []string `yaml:"columns"`
		Functions       []string `yaml:"functions"`
		HasWhere        bool     `yaml:"has_where"`
		Writes          bool     `yaml:"writes"`
		Analyze         bool     `yaml:"analyze"`
		Text            string   `yaml:"text"`
	} `yaml:"statement"`
	Principal struct {
		Subject  string         `yaml:"subject"`
		Groups   []string       `yaml:"groups"`
		ClientID string         `yaml:"client_id"`
		Issuer   string         `yaml:"issuer"`
		Claims   map[string]any `yaml:"claims"`
		Act      []struct {
			Subject  string `yaml:"subject"`
			ClientID string `yaml:"client_id"`
		} `yaml:"act"`
	} `yaml:"principal"`
	Connection struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	} `yaml:"connection"`
	Session struct {
		ClientAddr      string    `yaml:"client_addr"`
		ApplicationName string    `yaml:"application_name"`
		User            string    `yaml:"user"`
		TLS             bool      `yaml:"tls"`
		Time            time.Time `yaml:"time"`
	} `yaml:"session"`
	Action struct {
		Kind     string `yaml:"kind"`
		Protocol string `yaml:"protocol"`
	} `yaml:"action"`
}

func (ti *testInput) input() *Input {
	in := &Input{
		Statement: Statement(ti.Statement),
		Principal: Principal{
			Subject: ti.Principal.Subject, Groups: ti.Principal.Groups, ClientID: ti.Principal.ClientID,
			Issuer: ti.Principal.Issuer, Claims: ti.Principal.Claims,
		},
		Connection: Connection(ti.Connection),
		Session:    Session(ti.Session),
		Action:     Action(ti.Action),
	}
	for _, a := range ti.Principal.Act {
		in.Principal.Act = append(in.Principal.Act, Actor(a))
	}
	if in.Action.Kind == "" {
		in.Action = Action{Kind: "statement", Protocol: "simple"}
	}
	return in
}

type want struct {
	Verdict   string   `yaml:"verdict"`
	Policy    string   `yaml:"policy,omitempty"`
	Rule      string   `yaml:"rule,omitempty"`
	Message   string   `yaml:"message,omitempty"`
	Approvers []string `yaml:"approvers,omitempty,flow"`
	Timeout   string   `yaml:"timeout,omitempty"`
	Mask      *struct {
		Columns    []string `yaml:"columns,omitempty,flow"` // "pattern=method"
		Entities   []string `yaml:"entities,omitempty,flow"`
		Derived    string   `yaml:"derived,omitempty"`
		Predicates string   `yaml:"predicates,omitempty"`
	} `yaml:"mask,omitempty"`
	Errors []string `yaml:"errors,omitempty"`
}

func wantOf(d Decision) want {
	w := want{Verdict: d.Verdict.String(), Policy: d.Policy, Rule: d.Rule, Message: d.Message, Approvers: d.Approvers, Errors: d.Errors}
	if d.Timeout != 0 {
		w.Timeout = d.Timeout.String()
	}
	if !d.Mask.Empty() {
		w.Mask = &struct {
			Columns    []string `yaml:"columns,omitempty,flow"`
			Entities   []string `yaml:"entities,omitempty,flow"`
			Derived    string   `yaml:"derived,omitempty"`
			Predicates string   `yaml:"predicates,omitempty"`
		}{Entities: d.Mask.Entities, Derived: d.Mask.Derived, Predicates: d.Mask.Predicates}
		for _, c := range d.Mask.Columns {
			w.Mask.Columns = append(w.Mask.Columns, c.Pattern+"="+c.Method)
		}
	}
	return w
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecisionsGolden evaluates every case of every decisions file and
// compares the decision with the case's `want`. With -update the wants are
// rewritten in place (the file is re-encoded, comments kept).
func TestDecisionsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/decisions/*.yaml")
	if len(files) == 0 {
		t.Fatal("no decision files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var df decisionFile
			if err := yaml.Unmarshal(data, &df); err != nil {
				t.Fatal(err)
			}
			set, err := Parse(file, &df.Policies)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, c := range df.Cases {
				d := set.Evaluate(c.Input.input())
				w := wantOf(d)
				got = append(got, w)
				if !*update {
					if g, e := marshal(t, w), marshal(t, c.Want); g != e {
						t.Errorf("case %q:\ngot:\n%s\nwant:\n%s", c.Name, g, e)
					}
				}
			}
			if *update {
				rewriteWants(t, file, data, got)
			}
		})
	}
}

// rewriteWants replaces each case's `want` node with the decision got.
func rewriteWants(t *testing.T, file string, data []byte, got []want) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	var cases *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "cases" {
			cases = root.Content[i+1]
		}
	}
	for i, c := range cases.Content {
		var wn yaml.Node
		if err := wn.Encode(got[i]); err != nil {
			t.Fatal(err)
		}
		replaced := false
		for j := 0; j+1 < len(c.Content); j += 2 {
			if c.Content[j].Value == "want" {
				c.Content[j+1] = &wn
				replaced = true
			}
		}
		if !replaced {
			c.Content = append(c.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "want"}, &wn)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConfigErrorsGolden parses each testdata/invalid/*.yaml as a policies
// file and compares the error text with the .err file beside it.
func TestConfigErrorsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no invalid files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := ParseFile(file)
			if err == nil {
				t.Fatal("parsed without error")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(exp) {
				t.Errorf("got:\n%s\nwant:\n%s", got, exp)
			}
		})
	}
}
