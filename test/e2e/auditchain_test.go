package e2e

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/store/storeopen"
)

// TestAuditChainExportVerify runs statements through the real gateway,
// exports the chain with the CLI and verifies the file offline with the CLI
// and nothing but the public key; then a tampered copy fails naming the
// event; then the live verify of the running gateway passes. On SQLite and
// on the PostgreSQL store.
func TestAuditChainExportVerify(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			// Checkpoints soon, so the export carries one: an export with
			// none proves nothing and fails verification.
			o := envOpts{policies: signSoon}
			if backend == "postgres" {
				pgtest.Need(t, shared)
				t.Setenv("GATEHOUSE_TEST_STORE", shared.DSN(shared.CreateDB(t)))
				o.store = "env:GATEHOUSE_TEST_STORE"
			}
			e := startEnv(t, o)
			tok := e.token("agent-1", "analysts")
			e.run(tok, "psql", "-X", "-Atc", "select 1; select 'two'; create table t (x int); insert into t values (1), (2)")
			e.run(tok, "psql", "-X", "-Atc", "select count(*) from t")
			admin := e.token("root", "platform-admins")

			pubFile := filepath.Join(e.dir, "audit.pub")
			resp, err := http.Get(e.api + "/api/v1/audit/public-key") // no token: the key is public
			if err != nil {
				t.Fatal(err)
			}
			pem, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(pem), "BEGIN PUBLIC KEY") {
				t.Fatalf("public key: %d %s", resp.StatusCode, pem)
			}
			os.WriteFile(pubFile, pem, 0o644)

			// Wait until the session's events are stored, then export.
			e.events(t, "type=session.closed&principal=agent-1")
			file := filepath.Join(e.dir, "audit.jsonl")
			data := e.exportSigned(admin, file)
			if !strings.Contains(string(data), `"statement":"insert into t values (1), (2)"`) {
				t.Fatalf("export lacks the statement:\n%s", data)
			}

			// Offline: no API, no token; only the file and the key.
			out, err := offlineCLI("audit", "verify", "--file", file, "--public-key", pubFile)
			if err != nil || !strings.Contains(out, "OK: ") {
				t.Fatalf("offline verify: %v\n%s", err, out)
			}

			// Change one statement in the file: verify fails, naming it.
			var lines []string
			var nodeSeq string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if strings.Contains(l, `"statement":"select 'two'"`) {
					l = strings.Replace(l, `select 'two'`, `select 'TWO'`, 1)
					i := strings.Index(l, `"node_seq":`)
					nodeSeq = l[i+len(`"node_seq":`):][:strings.IndexByte(l[i+len(`"node_seq":`):], ',')]
				}
				lines = append(lines, l)
			}
			tampered := filepath.Join(e.dir, "tampered.jsonl")
			os.WriteFile(tampered, []byte(strings.Join(lines, "")), 0o600)
			out, err = offlineCLI("audit", "verify", "--file", tampered, "--public-key", pubFile)
			if err == nil || !strings.Contains(out, "node_seq "+nodeSeq+": the event's content does not match its hash") {
				t.Fatalf("tampered verify (node_seq %s): %v\n%s", nodeSeq, err, out)
			}

			// Live: the CLI streams the gateway's export and checks the
			// gateway's head too.
			out = e.runCLI(admin, "audit", "verify", "--public-key", pubFile)
			if !strings.Contains(out, "OK: ") {
				t.Fatalf("live verify: %s", out)
			}

			// Shutdown signs the head: afterwards nothing is unsigned.
			if err := e.gw.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			dsn := ""
			if backend == "postgres" {
				dsn = os.Getenv("GATEHOUSE_TEST_STORE")
			}
			st, err := storeopen.Open(t.Context(), dsn, filepath.Join(e.dir, "data"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			pub, err := chain.ParsePublicKey(pem)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := export.Write(t.Context(), &buf, st, export.Options{}); err != nil {
				t.Fatal(err)
			}
			rep, err := export.Verify(&buf, []ed25519.PublicKey{pub})
			if err != nil || !rep.OK() || len(rep.Nodes) != 1 || rep.Nodes[0].UnsignedTail != 0 || rep.Nodes[0].Signed == 0 {
				t.Fatalf("after shutdown: %v %+v", err, rep)
			}
		})
	}
}

// offlineCLI runs the gatehouse binary with no API address or token in its
// environment.
func offlineCLI(args ...string) (string, error) {
	cmd := exec.Command(cliBuild.path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signSoon is top-level YAML (envOpts.policies) for a short checkpoint
// interval, so an export soon carries a checkpoint: one without any proves
// nothing and fails verification.
const signSoon = "\naudit: { checkpoint_interval: 200ms }\n"

// exportSigned exports the audit chain to file with the CLI once it holds a
// signed checkpoint (or after 10 s), and returns the file's bytes.
func (e *env) exportSigned(tok, file string) []byte {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		e.runCLI(tok, "audit", "export", "--out", file)
		data, _ := os.ReadFile(file)
		if bytes.Contains(data, []byte(`"record":"checkpoint"`)) || time.Now().After(deadline) {
			return data
		}
	}
}
