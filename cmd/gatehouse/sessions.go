package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/access"
	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

func (c *cli) newAuditSessionsCmd() *cobra.Command {
	var (
		q      adminapi.SessionQuery
		output string
	)
	cmd := &cobra.Command{
		Use:   "sessions [filters]",
		Short: "List recent client sessions with their principal, client and statement count",
		Long: `List the most recent sessions (oldest first): id, principal, connection,
client, start, end and the number of statements recorded. Replay one with
gatehouse audit replay SESSION_ID.`,
		Example: `  gatehouse audit sessions --principal agent-7 --since 24h
  gatehouse audit sessions --connection orders -n 200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if q.Limit < 1 || q.Limit > adminapi.MaxSessionLimit {
				return usagef("-n must be between 1 and %d", adminapi.MaxSessionLimit)
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			l, err := cl.ListSessions(cmd.Context(), q)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, l)
			}
			tw := newTable(c.stdout)
			row(tw, "SESSION", "PRINCIPAL", "CONNECTION", "CLIENT", "STARTED", "ENDED", "STATEMENTS")
			for _, s := range l.Sessions {
				ended := "-"
				if s.EndedAt != nil {
					ended = s.EndedAt.Local().Format(time.RFC3339)
				}
				client := s.ClientAddr
				if s.ApplicationName != "" {
					client += " (" + s.ApplicationName + ")"
				}
				row(tw, s.ID, cell(s.Subject, 40), cell(s.Connection, 0), cell(client, 50),
					s.StartedAt.Local().Format(time.RFC3339), ended, itoa(s.Statements))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.IntVarP(&q.Limit, "limit", "n", adminapi.DefaultSessionLimit, "number of recent sessions to list")
	f.StringVar(&q.Principal, "principal", "", "only sessions of this subject")
	f.StringVar(&q.Connection, "connection", "", "only sessions on this connection")
	f.StringVar(&q.Since, "since", "", "only sessions started since an RFC 3339 time or a duration ago (e.g. 1h)")
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) newAuditReplayCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "replay SESSION_ID",
		Short: "Print a session like a psql transcript, from the audit log",
		Long: `Print one session from the audit log like a psql transcript: who connected
from where and when, then each statement with its decision (allow, deny, or
held for review with the review id and approvers), its bound parameters, the
recorded sample of its result rows (masked, as the client received them) as
an aligned table, its row count, notices and errors. With -o json, the
session and all its events.`,
		Example: `  gatehouse audit sessions --principal agent-7
  gatehouse audit replay 3f2c9a1e5b7d4c21`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			var all *adminapi.SessionEvents
			var after int64
			for {
				page, err := cl.GetSession(cmd.Context(), args[0], after, adminapi.MaxSessionEventLimit)
				if err != nil {
					return explain(cl.BaseURL, err)
				}
				if all == nil {
					all = page
				} else {
					all.Events = append(all.Events, page.Events...)
				}
				if !page.More || len(page.Events) == 0 {
					break
				}
				after = page.LastSeq
			}
			all.More, all.LastSeq = false, 0
			if n := len(all.Events); n > 0 {
				all.LastSeq = all.Events[n-1].Seq
			}
			if output == "json" {
				return printJSON(c.stdout, all)
			}
			return replay(c.stdout, all)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// recorded is the part of a statement event's detail a replay shows (the
// checkpoint's statementDetail).
type recorded struct {
	DurationMS      float64         `json:"duration_ms"`
	Rows            *int64          `json:"rows"`
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	Policy          string          `json:"policy"`
	Rule            string          `json:"rule"`
	ReviewID        string          `json:"review_id"`
	Approvers       []string        `json:"approvers"`
	Columns         []access.Column `json:"columns"`
	Params          []string        `json:"params"`
	Sample          [][]*string     `json:"sample"`
	SampleTruncated bool            `json:"sample_truncated"`
	Notices         []string        `json:"notices"`
}

// replay writes the transcript of a session.
func replay(w io.Writer, se *adminapi.SessionEvents) error {
	s := se.Session
	b := &strings.Builder{}
	fmt.Fprintf(b, "-- gatehouse session %s\n", s.ID)
	fmt.Fprintf(b, "-- principal:  %s", s.Subject)
	if s.Issuer != "" {
		fmt.Fprintf(b, " (issuer %s)", s.Issuer)
	}
	b.WriteString("\n")
	if len(s.Groups) > 0 {
		fmt.Fprintf(b, "-- groups:     %s\n", strings.Join(s.Groups, ", "))
	}
	if len(s.Act) > 0 {
		fmt.Fprintf(b, "-- act chain:  %s (current actor first)\n", actChain(s.Act))
	}
	fmt.Fprintf(b, "-- connection: %s", s.Connection)
	if s.Protocol != "" {
		fmt.Fprintf(b, " (%s)", s.Protocol)
	}
	b.WriteString("\n")
	client := s.ClientAddr
	if s.ApplicationName != "" {
		client += ", application " + s.ApplicationName
	}
	if s.ClientUser != "" {
		client += ", user " + s.ClientUser
	}
	tls := "no TLS"
	if s.TLS {
		tls = "TLS"
	}
	fmt.Fprintf(b, "-- client:     %s, %s\n", client, tls)
	fmt.Fprintf(b, "-- started:    %s\n", s.StartedAt.Local().Format(time.RFC3339Nano))
	if s.EndedAt != nil {
		fmt.Fprintf(b, "-- ended:      %s", s.EndedAt.Local().Format(time.RFC3339Nano))
		if s.EndError != "" {
			fmt.Fprintf(b, " (%s)", s.EndError)
		}
		b.WriteString("\n")
	} else {
		b.WriteString("-- ended:      not recorded (still open, or the gateway stopped first)\n")
	}
	fmt.Fprintf(b, "-- statements: %d\n", s.Statements)
	prompt := s.Connection + "=> "
	for _, e := range se.Events {
		switch e.Type {
		case audit.TypeSessionOpened, audit.TypeSessionClosed:
			continue
		case audit.TypeStatement:
			replayStatement(b, e, prompt)
		default:
			fmt.Fprintf(b, "\n-- [%d] %s %s", e.Seq, e.Time.Local().Format("15:04:05.000"), e.Type)
			if e.Decision != "" {
				fmt.Fprintf(b, " (%s)", e.Decision)
			}
			var d struct {
				ReviewID string `json:"review_id"`
				Actor    string `json:"actor"`
			}
			json.Unmarshal(e.Detail, &d)
			if d.ReviewID != "" {
				fmt.Fprintf(b, " review %s", d.ReviewID)
			}
			if d.Actor != "" {
				fmt.Fprintf(b, " by %s", d.Actor)
			}
			if e.Reason != "" {
				fmt.Fprintf(b, ": %s", transcriptLine(e.Reason))
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, terminalSafe(b.String()))
	return err
}

// actChain renders an RFC 8693 delegation chain as the token carried it:
// the actor acting for the subject now, then each earlier actor.
func actChain(act []access.Actor) string {
	parts := make([]string, len(act))
	for i, a := range act {
		p := a.Subject
		if p == "" {
			p = "client " + a.ClientID
		} else if a.ClientID != "" {
			p += " (client " + a.ClientID + ")"
		}
		if a.Issuer != "" {
			p += " [" + a.Issuer + "]"
		}
		parts[i] = p
	}
	return strings.Join(parts, " < ")
}

func replayStatement(b *strings.Builder, e audit.Event, prompt string) {
	var r recorded
	if len(e.Detail) > 0 {
		json.Unmarshal(e.Detail, &r)
	}
	fmt.Fprintf(b, "\n-- [%d] %s %s", e.Seq, e.Time.Local().Format("15:04:05.000"), e.Decision)
	if r.ReviewID != "" {
		fmt.Fprintf(b, ", review %s", r.ReviewID)
		if len(r.Approvers) > 0 {
			fmt.Fprintf(b, " approved by %s", strings.Join(r.Approvers, ", "))
		}
	}
	if r.Policy != "" {
		fmt.Fprintf(b, " (policy %q rule %q)", r.Policy, r.Rule)
	}
	if r.DurationMS > 0 {
		fmt.Fprintf(b, ", %.3f ms", r.DurationMS)
	}
	b.WriteString("\n")
	stmt := strings.TrimRight(e.Statement, " \t\r\n;")
	b.WriteString(prompt + strings.ReplaceAll(stmt, "\n", "\n"+strings.Repeat(" ", len(prompt)-3)+"-> ") + ";\n")
	if len(r.Params) > 0 {
		ps := make([]string, len(r.Params))
		for i, p := range r.Params {
			ps[i] = fmt.Sprintf("$%d = %s", i+1, quoteParam(p))
		}
		fmt.Fprintf(b, "-- parameters: %s\n", strings.Join(ps, ", "))
	}
	for _, n := range r.Notices {
		b.WriteString(transcriptLine(n) + "\n")
	}
	if e.Decision == "deny" {
		fmt.Fprintf(b, "ERROR:  %s\n", transcriptLine(e.Reason))
		return
	}
	if r.Error != "" {
		fmt.Fprintf(b, "ERROR:  %s\n", transcriptLine(r.Error))
		return
	}
	if len(r.Columns) > 0 {
		writeTable(b, r.Columns, r.Sample)
		switch {
		case r.Rows == nil:
			b.WriteString("(row count unknown)\n")
		case int(*r.Rows) > len(r.Sample):
			fmt.Fprintf(b, "(%s; %d recorded)\n", plural(*r.Rows, "row"), len(r.Sample))
		case r.SampleTruncated:
			fmt.Fprintf(b, "(%s; values cut at the recording limit)\n", plural(*r.Rows, "row"))
		default:
			fmt.Fprintf(b, "(%s)\n", plural(*r.Rows, "row"))
		}
		return
	}
	if r.Command != "" {
		b.WriteString(r.Command + "\n")
	}
}

// writeTable prints columns and rows aligned like psql: headers centred,
// numbers right-aligned, NULL as empty.
func writeTable(b *strings.Builder, cols []access.Column, rows [][]*string) {
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = utf8.RuneCountInString(c.Name)
	}
	cellAt := func(r []*string, i int) string {
		if i >= len(r) || r[i] == nil {
			return ""
		}
		return transcriptLine(*r[i])
	}
	for _, r := range rows {
		for i := range cols {
			width[i] = max(width[i], utf8.RuneCountInString(cellAt(r, i)))
		}
	}
	line := make([]string, len(cols))
	for i, c := range cols {
		pad := width[i] - utf8.RuneCountInString(c.Name)
		line[i] = " " + strings.Repeat(" ", pad/2) + c.Name + strings.Repeat(" ", pad-pad/2) + " "
	}
	// psql keeps the header's trailing blanks but trims data lines.
	b.WriteString(strings.Join(line, "|") + "\n")
	for i := range cols {
		line[i] = strings.Repeat("-", width[i]+2)
	}
	b.WriteString(strings.Join(line, "+") + "\n")
	for _, r := range rows {
		for i, c := range cols {
			v := cellAt(r, i)
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(v))
			if numeric(c.Type) {
				line[i] = " " + pad + v + " "
			} else {
				line[i] = " " + v + pad + " "
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(line, "|"), " ") + "\n")
	}
}

func numeric(typ string) bool {
	switch typ {
	case "int2", "int4", "int8", "float4", "float8", "numeric", "oid":
		return true
	}
	return false
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func quoteParam(p string) string {
	if p == "NULL" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", "''") + "'"
}

// transcriptLine keeps a recorded value on one transcript line.
func transcriptLine(s string) string {
	return strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`, "\t", " ").Replace(s)
}

// terminalSafe escapes every control character but the newline: recorded
// statements, values, column names and errors come from the audited
// client, and escape sequences in them must not rewrite the auditor's
// terminal (erase lines, set the clipboard).
func terminalSafe(s string) string {
	clean := true
	for _, r := range s {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString(" ")
		case (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
