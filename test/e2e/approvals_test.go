package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/approval"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

const approvalPolicies = `
policies:
  - name: holds
    connections: [orders]
    principals: ["group:agents"]
    rules:
      - review: statement.kind == "delete"
        approvers: ["group:dba"]
        timeout: 60s
        message: deletes need a DBA
      - review: statement.kind == "update"
        approvers: ["group:dba"]
        min_approvals: 2
        message: updates need two DBAs
      - review: statement.kind == "insert"
        approvers: ["group:dba"]
        remember: 1m
        message: inserts need a DBA once a minute
      - allow: "true"
    default: deny
`

// approvalEnv starts a gateway with review rules and a table of three rows.
func approvalEnv(t *testing.T) (*env, string) {
	e := startEnv(t, envOpts{policies: approvalPolicies, access: `["group:agents", "group:admins"]`})
	e.run(e.token("root", "admins"), "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
		"create table items (id int primary key, name text); insert into items values (1, 'a'), (2, 'b'), (3, 'c')")
	return e, e.token("agent-7", "agents")
}

func (e *env) client(tok string) *adminapi.Client {
	return &adminapi.Client{BaseURL: e.api, Token: tok}
}

// pendingReview waits for the one pending review of statement and returns it.
func (e *env) pendingReview(t *testing.T, approver *adminapi.Client, statement string) approval.Review {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rs, err := approver.ListReviews(context.Background(), approval.Filter{Status: approval.Pending})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Statement == statement {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pending review of %q", statement)
	return approval.Review{}
}

func (e *env) count(t *testing.T, where string) int {
	t.Helper()
	out := e.run(e.token("root", "admins"), "psql", "-X", "-At", "-c", "select count(*) from items where "+where)
	var n int
	for _, c := range strings.TrimSpace(out) {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestApprovalPsqlApprove: psql's DELETE waits on the wire with a notice
// naming the review; requester and non-approvers cannot approve; a DBA's
// approval runs it exactly once in the same session; the review shows what
// an approver needs and the audit log ties it together.
func TestApprovalPsqlApprove(t *testing.T) {
	e, agent := approvalEnv(t)
	dba := e.client(e.token("dana", "dba"))
	const stmt = "delete from items where id = 1"
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "select 41 + 1", "-c", stmt, "-c", "select count(*) from items")
	cmd.Env = append(e.pgEnv(agent), "PGAPPNAME=agent-app")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		skipOrFail(t, "psql: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	r := e.pendingReview(t, dba, stmt)
	if r.Requester.Subject != "agent-7" || r.Connection != "orders" || r.ApplicationName != "agent-app" ||
		r.Policy != "holds" || r.Reason != "deletes need a DBA" || r.MinApprovals != 1 ||
		len(r.Approvers) != 1 || r.Approvers[0] != "group:dba" || r.Binding == "" || len(r.Facts) == 0 {
		t.Fatalf("review lacks what an approver needs: %+v", r)
	}
	select {
	case err := <-done:
		t.Fatalf("psql finished while held: %v\n%s", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	if n := e.count(t, "id = 1"); n != 1 {
		t.Fatal("the held DELETE ran before approval")
	}
	// The requester may see but not approve; others may not approve.
	if _, err := e.client(agent).VoteReview(context.Background(), r.ID, true, ""); apiStatus(err) != 403 {
		t.Fatalf("self-approval: %v", err)
	}
	if _, err := e.client(e.token("eve", "analysts")).VoteReview(context.Background(), r.ID, true, ""); apiStatus(err) != 403 && apiStatus(err) != 404 {
		t.Fatalf("non-approver vote: %v", err)
	}
	// The CLI approves.
	if got := e.runCLI(e.token("dana", "dba"), "reviews", "approve", r.ID, "--reason", "ticket 12"); !strings.Contains(got, "approved") {
		t.Fatalf("cli approve: %s", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("psql still waiting after approval")
	}
	o := out.String()
	if !strings.Contains(o, "held for approval, review "+r.ID) || !strings.Contains(o, "DELETE 1") || !strings.Contains(o, "\n     2\n") {
		t.Fatalf("psql output: %s", o)
	}
	if n := e.count(t, "true"); n != 2 {
		t.Fatalf("rows after approved delete: %d, want 2 (ran exactly once)", n)
	}
	// A second vote on a decided review is refused.
	if _, err := e.client(e.token("dan", "dba")).VoteReview(context.Background(), r.ID, true, ""); apiStatus(err) != 409 {
		t.Fatalf("vote after decision: %v", err)
	}
	got, err := dba.GetReview(context.Background(), r.ID)
	if err != nil || got.Status != approval.Approved || len(got.Votes) != 1 || got.Votes[0].Subject != "dana" {
		t.Fatalf("stored review: %+v %v", got, err)
	}
	if len(got.History) == 0 || got.History[len(got.History)-1] != "select 41 + 1" {
		t.Errorf("review history: %q", got.History)
	}
	// Audit: created and approved events, and the statement names its review.
	evs := e.events(t, "principal=agent-7&limit=100")
	var created, approved, ran bool
	for _, ev := range evs {
		switch {
		case ev.Type == approval.EventCreated && strings.Contains(string(ev.Detail), r.ID):
			created = true
		case ev.Type == approval.EventApproved && ev.Reason == "approved by dana":
			approved = true
		case ev.Type == "statement" && ev.Statement == stmt && strings.Contains(string(ev.Detail), r.ID) && ev.Decision == "allow":
			ran = true
		}
	}
	if !created || !approved || !ran {
		t.Fatalf("audit: created=%v approved=%v statement=%v in %+v", created, approved, ran, evs)
	}
}

func apiStatus(err error) int {
	var ae *adminapi.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// TestApprovalExtendedDeny: a held Execute carries its bound parameters to
// the approver; a denial reaches the client as 42501 with the approver's
// reason, nothing runs, and the session (also inside a transaction) stays
// as PostgreSQL would leave it.
func TestApprovalExtendedDeny(t *testing.T) {
	e, agent := approvalEnv(t)
	ctx := context.Background()
	dba := e.client(e.token("dana", "dba"))
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	const stmt = "delete from items where id = $1"
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, stmt, 2)
		errc <- err
	}()
	r := e.pendingReview(t, dba, stmt)
	if len(r.Params) != 1 || r.Params[0] != "2" || r.Protocol != "extended" {
		t.Fatalf("bound parameters not shown: %+v", r)
	}
	if _, err := dba.VoteReview(ctx, r.ID, false, ""); apiStatus(err) != 400 {
		t.Fatalf("deny without reason: %v", err)
	}
	if _, err := dba.VoteReview(ctx, r.ID, false, "row 2 is needed by billing"); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "row 2 is needed by billing") {
		t.Fatalf("denied execute: %v", err)
	}
	if n := e.count(t, "id = 2"); n != 1 {
		t.Fatal("denied statement ran")
	}
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session unusable after denial: %v", err)
	}
	// In a transaction block, the denial aborts the block as an error would.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := tx.Exec(ctx, stmt, 3)
		errc <- err
	}()
	r = e.pendingReview(t, dba, stmt)
	dba.VoteReview(ctx, r.ID, false, "no")
	if err := <-errc; sqlstate(err) != "42501" {
		t.Fatalf("denied in tx: %v", err)
	}
	if _, err := tx.Exec(ctx, "select 1"); sqlstate(err) != "25P02" {
		t.Fatalf("after denial in tx want 25P02: %v", err)
	}
	tx.Rollback(ctx)
	// Approved inside a transaction: runs in it and commits with it.
	tx, _ = c.Begin(ctx)
	go func() {
		_, err := tx.Exec(ctx, stmt, 3)
		errc <- err
	}()
	r = e.pendingReview(t, dba, stmt)
	if _, err := dba.VoteReview(ctx, r.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("approved in tx: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "id = 3"); n != 0 {
		t.Fatal("approved delete in tx did not commit")
	}
}

// TestApprovalPipeline: messages pipelined behind a held one wait in order
// and run after it.
func TestApprovalPipeline(t *testing.T) {
	e, agent := approvalEnv(t)
	ctx := context.Background()
	dba := e.client(e.token("dana", "dba"))
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	b := &pgx.Batch{}
	b.Queue("select count(*) from items")
	b.Queue("delete from items where id = $1", 1)
	b.Queue("select count(*) from items")
	res := make(chan []int64, 1)
	errc := make(chan error, 1)
	go func() {
		br := c.SendBatch(ctx, b)
		defer br.Close()
		var n1, n2 int64
		if err := br.QueryRow().Scan(&n1); err != nil {
			errc <- err
			return
		}
		tag, err := br.Exec()
		if err != nil {
			errc <- err
			return
		}
		if err := br.QueryRow().Scan(&n2); err != nil {
			errc <- err
			return
		}
		res <- []int64{n1, tag.RowsAffected(), n2}
	}()
	r := e.pendingReview(t, dba, "delete from items where id = $1")
	if _, err := dba.VoteReview(ctx, r.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	case got := <-res:
		if got[0] != 3 || got[1] != 1 || got[2] != 2 {
			t.Fatalf("pipeline results %v, want [3 1 2]", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("pipeline did not finish after approval")
	}
}

// TestApprovalMinApprovalsAndRemember: two distinct DBAs are needed where
// the rule says so; a remembered approval lets the same statement repeat.
func TestApprovalMinApprovalsAndRemember(t *testing.T) {
	e, agent := approvalEnv(t)
	ctx := context.Background()
	dana, dan := e.client(e.token("dana", "dba")), e.client(e.token("dan", "dba"))
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	errc := make(chan error, 1)
	const upd = "update items set name = 'z' where id = 1"
	go func() {
		_, err := c.Exec(ctx, upd, pgx.QueryExecModeSimpleProtocol)
		errc <- err
	}()
	r := e.pendingReview(t, dana, upd)
	if r.Protocol != "simple" || r.MinApprovals != 2 {
		t.Fatalf("review: %+v", r)
	}
	if got, err := dana.VoteReview(ctx, r.ID, true, ""); err != nil || got.Status != approval.Pending || got.Approvals() != 1 {
		t.Fatalf("first approval: %+v %v", got, err)
	}
	if _, err := dana.VoteReview(ctx, r.ID, true, ""); apiStatus(err) != 409 {
		t.Fatalf("same approver twice: %v", err)
	}
	select {
	case err := <-errc:
		t.Fatalf("ran with one of two approvals: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := dan.VoteReview(ctx, r.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("approved update: %v", err)
	}
	// remember: 1m — once approved, the same insert repeats without a review.
	const ins = "insert into items select max(id) + 1, 'x' from items"
	go func() {
		_, err := c.Exec(ctx, ins, pgx.QueryExecModeSimpleProtocol)
		errc <- err
	}()
	r = e.pendingReview(t, dana, ins)
	dana.VoteReview(ctx, r.ID, true, "")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Exec(rctx, ins, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("remembered insert: %v", err)
	}
	if n := e.count(t, "name = 'x'"); n != 2 {
		t.Fatalf("inserted rows: %d, want 2", n)
	}
	rs, _ := dana.ListReviews(ctx, approval.Filter{})
	n := 0
	for _, r := range rs {
		if r.Statement == ins {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("reviews of the remembered insert: %d, want 1", n)
	}
}

// TestApprovalCancelAndDisconnect: a client's CancelRequest and a client
// that goes away both withdraw the review; the cancelled session stays usable.
func TestApprovalCancelAndDisconnect(t *testing.T) {
	e, agent := approvalEnv(t)
	ctx := context.Background()
	dba := e.client(e.token("dana", "dba"))
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// pgx sends a CancelRequest when the context ends.
	qctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	const stmt = "delete from items where id = 1"
	go func() {
		_, err := c.Exec(qctx, stmt, pgx.QueryExecModeSimpleProtocol)
		errc <- err
	}()
	r := e.pendingReview(t, dba, stmt)
	cancel()
	err = <-errc
	var pe *pgconn.PgError
	if !errors.As(err, &pe) && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled hold: %v", err)
	}
	waitStatus(t, dba, r.ID, approval.Withdrawn)
	if n := e.count(t, "id = 1"); n != 1 {
		t.Fatal("withdrawn statement ran")
	}
	// A client that disconnects while held.
	cmd := exec.Command("psql", "-X", "-c", "delete from items where id = 2")
	cmd.Env = e.pgEnv(agent)
	if err := cmd.Start(); err != nil {
		skipOrFail(t, "psql: %v", err)
	}
	r = e.pendingReview(t, dba, "delete from items where id = 2")
	cmd.Process.Kill()
	cmd.Wait()
	waitStatus(t, dba, r.ID, approval.Withdrawn)
	got, _ := dba.GetReview(ctx, r.ID)
	if !strings.Contains(got.Outcome, "disconnected") {
		t.Errorf("outcome: %q", got.Outcome)
	}
	if n := e.count(t, "id = 2"); n != 1 {
		t.Fatal("withdrawn statement ran")
	}
}

func waitStatus(t *testing.T, cl *adminapi.Client, id string, want approval.Status) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := cl.GetReview(context.Background(), id)
		if err == nil && r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("review %s: %+v %v; want status %s", id, r, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestApprovalWebhook: review events reach a webhook receiver, signed, with
// card numbers in the statement masked.
func TestApprovalWebhook(t *testing.T) {
	type got struct {
		typ  string
		body string
	}
	recv := make(chan got, 16)
	secret := "hook-secret-for-tests"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header.Get("X-Gatehouse-Signature"), r.Header.Get("X-Gatehouse-Timestamp"), body); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		recv <- got{r.Header.Get("X-Gatehouse-Event"), string(body)}
	}))
	defer srv.Close()
	t.Setenv("HOOK_SECRET", secret)
	e := startEnv(t, envOpts{access: `["group:agents", "group:admins"]`, policies: approvalPolicies + `
approvals:
  webhooks:
    - name: test
      url: ` + srv.URL + `
      secret: env:HOOK_SECRET
      events: ["review.*"]
`})
	e.run(e.token("root", "admins"), "psql", "-X", "-c", "create table items (id int primary key, name text)")
	agent := e.token("agent-7", "agents")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	const stmt = "delete from items where name = '4111 1111 1111 1111'"
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol)
		errc <- err
	}()
	dba := e.client(e.token("dana", "dba"))
	r := e.pendingReview(t, dba, stmt)
	first := <-recv
	if first.typ != approval.EventCreated || !strings.Contains(first.body, r.ID) || strings.Contains(first.body, "4111 1111 1111 1111") {
		t.Fatalf("created notification: %+v", first)
	}
	dba.VoteReview(ctx, r.ID, true, "")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if second := <-recv; second.typ != approval.EventApproved {
		t.Fatalf("second notification: %+v", second)
	}
}

// TestApprovalStream: an approver following GET /api/v1/reviews/stream sees
// a held statement's review as a Server-Sent Event; a non-approver does not.
func TestApprovalStream(t *testing.T) {
	e, agent := approvalEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := func(tok string) <-chan string {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.api+"/api/v1/reviews/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %v %v", resp, err)
		}
		lines := make(chan string, 64)
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		return lines
	}
	dbaLines, eveLines := follow(e.token("dana", "dba")), follow(e.token("eve", "analysts"))
	c, err := pgx.Connect(ctx, e.dsn("orders", agent))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	go c.Exec(ctx, "delete from items where id = 3", pgx.QueryExecModeSimpleProtocol)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-dbaLines:
			if l == "event: "+approval.EventCreated {
				data := <-dbaLines
				if !strings.HasPrefix(data, "data: ") || !strings.Contains(data, `"statement":"delete from items where id = 3"`) {
					t.Fatalf("event data: %s", data)
				}
				select {
				case l := <-eveLines:
					if strings.HasPrefix(l, "event:") {
						t.Fatalf("a non-approver saw %s", l)
					}
				case <-time.After(300 * time.Millisecond):
				}
				return
			}
		case <-deadline:
			t.Fatal("no review.created event on the stream")
		}
	}
}

// TestApprovalAfterReload: a statement pgx prepared and caches while the
// policies allowed it is not run on the old decision once a reload makes
// it need review. Its first re-execution is refused (its parameters were
// bound before it needed review, and approvers must see them); the next one
// is held with its parameters and runs once approved.
func TestApprovalAfterReload(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "policies.yaml")
	write := func(updateRule string) {
		err := os.WriteFile(pf, []byte(`
policies:
  - name: file-policy
    connections: [orders]
    principals: ["group:agents"]
    rules:
`+updateRule+`
      - allow: "true"
    default: deny
`), 0o600)
		if err != nil {
			t.Fatal(err)
		}
	}
	write("")
	e := startEnv(t, envOpts{policies: "policies_file: " + pf, access: `["group:agents", "group:admins"]`})
	admin := e.token("root", "admins")
	e.run(admin, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "create table items (id int primary key, name text); insert into items values (1, 'a')")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn("orders", e.token("agent-7", "agents")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	const stmt = "update items set name = $1 where id = $2"
	if _, err := c.Exec(ctx, stmt, "b", 1); err != nil {
		t.Fatal(err)
	}
	write(`      - review: statement.kind == "update"
        approvers: ["group:dba"]
        message: updates need a DBA`)
	req, _ := http.NewRequest("POST", e.api+"/api/v1/policies/reload", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("root", "platform-admins"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.Exec(ctx, stmt, "c", 1); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "now needs approval") {
		t.Fatalf("first run after the reload: %v", err)
	}
	if n := e.count(t, "name = 'c'"); n != 0 {
		t.Fatal("ran on the decision made before the reload")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, stmt, "d", 1)
		errc <- err
	}()
	dba := e.client(e.token("dana", "dba"))
	r := e.pendingReview(t, dba, stmt)
	if len(r.Params) != 2 || r.Params[0] != "d" || r.Params[1] != "1" {
		t.Fatalf("held without its parameters: %+v", r.Params)
	}
	if _, err := dba.VoteReview(ctx, r.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("approved: %v", err)
	}
	if n := e.count(t, "name = 'd'"); n != 1 {
		t.Fatal("approved update did not run")
	}
}
