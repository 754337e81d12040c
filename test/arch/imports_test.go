// Package arch checks gatehouse's dependency rules (docs/architecture.md):
// the shared vocabulary imports nothing of ours, leaf packages never reach
// into engines, the checkpoint or the gateway, and engines reach policy,
// approval and audit only through the checkpoint seam.
package arch

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/gatehouse/gatehouse/"

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(imp, mod))
			}
		}
	}
	if len(imports) == 0 && !strings.Contains(string(out), "internal/access") {
		t.Fatal("go list returned no packages")
	}
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	leaves := []string{"internal/identity", "internal/policy", "internal/approval", "internal/masking",
		"internal/audit", "internal/sqlinspect", "internal/credential", "internal/store", "internal/config", "internal/webhook", "internal/auditsink"}
	for pkg, imps := range imports {
		isTest := strings.HasSuffix(pkg, "test") // xxxtest doubles may wire more
		for _, imp := range imps {
			switch {
			case pkg == "internal/access":
				t.Errorf("internal/access must import only the standard library, imports %s", imp)
			case !isTest && anyUnder(pkg, leaves, under) && (under(imp, "internal/engine") || under(imp, "internal/checkpoint") || under(imp, "internal/gateway")):
				t.Errorf("leaf package %s must not import %s", pkg, imp)
			case under(pkg, "internal/engine/") && !isTest && (under(imp, "internal/policy") || under(imp, "internal/approval") ||
				under(imp, "internal/audit") || under(imp, "internal/checkpoint") || under(imp, "internal/gateway") || under(imp, "internal/identity") || under(imp, "internal/store")):
				t.Errorf("engine %s must reach %s only through the engine seam", pkg, imp)
			case under(pkg, "internal/engine/") && under(imp, "internal/engine/") && !under(imp, "internal/engine/enginetest") && enginesDiffer(pkg, imp):
				t.Errorf("engine %s must not import another engine %s", pkg, imp)
			case !under(pkg, "internal/gateway") && !under(pkg, "cmd") && !under(pkg, "test") && under(imp, "internal/engine/") && !under(imp, "internal/engine/enginetest") && !under(pkg, "internal/engine"):
				t.Errorf("only gateway and cmd may know engines: %s imports %s", pkg, imp)
			}
		}
	}
}

func anyUnder(p string, dirs []string, under func(string, string) bool) bool {
	for _, d := range dirs {
		if under(p, d) {
			return true
		}
	}
	return false
}

func enginesDiffer(a, b string) bool {
	name := func(p string) string { return strings.SplitN(strings.TrimPrefix(p, "internal/engine/"), "/", 2)[0] }
	return name(a) != name(b)
}
