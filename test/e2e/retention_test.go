package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// TestAuditRetention: a gateway with audit.retention prunes its chain up to
// a cutoff behind a signed prune marker (`gatehouse audit prune`, through
// the admin API, recorded in the audit log); the export carries the marker and
// verifies offline with only the public key (and live), the pruned session
// is gone and the later one is still there. A marker edited in the export
// fails verification. On SQLite and on the PostgreSQL store.
func TestAuditRetention(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			o := envOpts{policies: `
audit:
  retention: 90d
  checkpoint_every: 1
  checkpoint_interval: 100ms
`}
			if backend == "postgres" {
				pgtest.Need(t, shared)
				t.Setenv("GATEHOUSE_TEST_STORE", shared.DSN(shared.CreateDB(t)))
				o.store = "env:GATEHOUSE_TEST_STORE"
			}
			e := startEnv(t, o)
			tok := e.token("agent-1", "analysts")
			e.run(tok, "psql", "-X", "-Atc", "select 'old session'")
			e.events(t, "type=session.closed&principal=agent-1")
			time.Sleep(300 * time.Millisecond) // a checkpoint signs the old session
			cutoff := time.Now()
			time.Sleep(10 * time.Millisecond)
			e.run(tok, "psql", "-X", "-Atc", "select 'new session'")
			deadline := time.Now().Add(10 * time.Second)
			for len(e.events(t, "type=session.closed&principal=agent-1")) < 2 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}

			// On demand through the admin API, as an operator would.
			admin := e.token("root", "platform-admins")
			out := e.runCLI(admin, "audit", "prune", "--before", cutoff.UTC().Format(time.RFC3339Nano))
			if !strings.Contains(out, "pruned 3 events of node") {
				t.Fatalf("audit prune: %s", out)
			}
			t.Log(strings.TrimSpace(out))
			if evs := e.events(t, "type=admin"); len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Reason, "audit pruned through node_seq") {
				t.Fatalf("the prune is not in the audit log: %+v", evs)
			}
			// Again: nothing more is old enough.
			if out := e.runCLI(admin, "audit", "prune", "--before", cutoff.UTC().Format(time.RFC3339Nano)); !strings.Contains(out, "nothing pruned") {
				t.Fatalf("second prune: %s", out)
			}

			resp, err := http.Get(e.api + "/api/v1/audit/public-key")
			if err != nil {
				t.Fatal(err)
			}
			pem, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			pubFile := filepath.Join(e.dir, "audit.pub")
			os.WriteFile(pubFile, pem, 0o644)

			file := filepath.Join(e.dir, "audit.jsonl")
			e.runCLI(admin, "audit", "export", "--out", file)
			data, _ := os.ReadFile(file)
			if strings.Contains(string(data), "old session") || !strings.Contains(string(data), "new session") ||
				!strings.Contains(string(data), `"record":"prune"`) {
				t.Fatalf("export after prune:\n%s", data)
			}
			out, err = offlineCLI("audit", "verify", "--file", file, "--public-key", pubFile)
			if err != nil || !strings.Contains(out, "OK: ") || !strings.Contains(out, "pruned by retention") {
				t.Fatalf("offline verify after prune: %v\n%s", err, out)
			}
			if out := e.runCLI(admin, "audit", "verify", "--public-key", pubFile); !strings.Contains(out, "OK: ") {
				t.Fatalf("live verify after prune: %s", out)
			}

			// Edit the marker's hash in the export: its signature breaks.
			var lines []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if strings.Contains(l, `"record":"prune"`) {
					i := strings.Index(l, `"hash":"`) + len(`"hash":"`)
					c := "0"
					if l[i] == '0' {
						c = "1"
					}
					l = l[:i] + c + l[i+1:]
				}
				lines = append(lines, l)
			}
			tampered := filepath.Join(e.dir, "tampered.jsonl")
			os.WriteFile(tampered, []byte(strings.Join(lines, "")), 0o600)
			out, err = offlineCLI("audit", "verify", "--file", tampered, "--public-key", pubFile)
			if err == nil || !strings.Contains(out, "prune marker does not verify") {
				t.Fatalf("tampered marker verify: %v\n%s", err, out)
			}
		})
	}
}
