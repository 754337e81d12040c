package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the policies parser: it must return a
// Set or an error, never panic, and any Set it returns must evaluate.
func FuzzParse(f *testing.F) {
	// Seeds are kept small: each run compiles CEL, which is slow under
	// coverage instrumentation (run with -fuzzminimizetime=5s or so).
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(agentsPolicy))
	f.Add([]byte("policies: [{name: p, connections: [a], principals: ['group:g'], default: allow, masking: {columns: [{column: 'a.*', method: hash}], entities: [email]}}]"))
	f.Add([]byte("policies: [{name: p, connections: '*', principals: '*', rules: [{deny: 'statement.text.matches(\"(a+)+$\")'}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseBytes("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, kind := range []string{"select", "drop_table", ""} {
			in := agentInput(kind)
			in.Statement.Text = string(data)
			s.Evaluate(in)
		}
	})
}
