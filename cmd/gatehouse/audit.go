package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit"
)

func (c *cli) newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the audit log",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.newAuditTailCmd(), c.newAuditSessionsCmd(), c.newAuditReplayCmd(),
		c.newAuditExportCmd(), c.newAuditVerifyCmd(), c.newAuditKeygenCmd(), c.newAuditPruneCmd())
	return cmd
}

func (c *cli) newAuditTailCmd() *cobra.Command {
	var (
		q      adminapi.EventQuery
		n      int
		follow bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "tail [-n N] [--follow] [filters]",
		Short: "Print the most recent audit events, optionally following new ones",
		Long: `Print the most recent audit events, oldest first. With --follow, keep
polling for new events every second until interrupted. With -o json, each
event is one JSON object per line.`,
		Example: `  gatehouse audit tail -n 50 --decision deny
  gatehouse audit tail --follow --connection orders -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if n < 1 || n > adminapi.MaxEventLimit {
				return usagef("-n must be between 1 and %d", adminapi.MaxEventLimit)
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			p := newEventPrinter(c.stdout, output)
			q.Limit = n
			l, err := cl.ListEvents(ctx, q)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			p.print(l.Events)
			if err := p.flush(); err != nil || !follow {
				return err
			}
			return c.followEvents(ctx, cl, q, l.LastSeq, p)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "lines", "n", 20, "number of recent events to print first")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	f.StringVar(&q.Type, "type", "", "only events of this type (session.opened, statement, admin, …)")
	f.StringVar(&q.Principal, "principal", "", "only events of this subject")
	f.StringVar(&q.Connection, "connection", "", "only events on this connection")
	f.StringVar(&q.Decision, "decision", "", "only events with this decision: allow, deny or hold")
	f.StringVar(&q.Session, "session", "", "only events of this session id")
	f.StringVar(&q.Since, "since", "", "only events since an RFC 3339 time or a duration ago (e.g. 1h)")
	addOutputFlag(cmd, &output)
	return cmd
}

// followEvents polls for events after last until ctx ends; an interrupt is
// the normal way to stop, so it is not an error.
func (c *cli) followEvents(ctx context.Context, cl *adminapi.Client, q adminapi.EventQuery, last int64, p *eventPrinter) error {
	interval := c.pollInterval
	if interval <= 0 {
		interval = time.Second
	}
	q.Since = "" // after= now carries the position
	q.Limit = adminapi.MaxEventLimit
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// after= pages forward (oldest first), so a burst larger than one
		// page is read whole by asking again until a page comes back short.
		for {
			q.After = last
			l, err := cl.ListEvents(ctx, q)
			if err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil
				}
				return explain(cl.BaseURL, err)
			}
			p.print(l.Events)
			if err := p.flush(); err != nil {
				return err
			}
			last = max(last, l.LastSeq)
			if len(l.Events) < q.Limit {
				break
			}
		}
	}
}

// eventPrinter prints events as an aligned table (header once) or as JSON
// lines.
type eventPrinter struct {
	w      io.Writer
	json   bool
	header bool
	rows   [][]string
}

func newEventPrinter(w io.Writer, output string) *eventPrinter {
	return &eventPrinter{w: w, json: output == "json"}
}

func (p *eventPrinter) print(evs []audit.Event) {
	for _, e := range evs {
		if p.json {
			b, _ := json.Marshal(e)
			p.rows = append(p.rows, []string{string(b)})
			continue
		}
		what := e.Statement
		if what == "" {
			what = e.Reason
		} else if e.Reason != "" {
			what += " — " + e.Reason
		}
		p.rows = append(p.rows, []string{
			itoa(e.Seq), e.Time.Local().Format(time.RFC3339), cell(e.Type, 0), cell(e.Subject, 40),
			cell(e.Connection, 0), cell(e.Decision, 0), cell(e.SessionID, 12), cell(what, 100),
		})
	}
}

// flush writes buffered rows. Table columns are aligned within each batch;
// follow mode prints a batch per poll.
func (p *eventPrinter) flush() error {
	defer func() { p.rows = p.rows[:0] }()
	if p.json {
		for _, r := range p.rows {
			if _, err := io.WriteString(p.w, r[0]+"\n"); err != nil {
				return err
			}
		}
		return nil
	}
	if len(p.rows) == 0 && p.header {
		return nil
	}
	tw := newTable(p.w)
	if !p.header {
		row(tw, "SEQ", "TIME", "TYPE", "SUBJECT", "CONNECTION", "DECISION", "SESSION", "STATEMENT/REASON")
		p.header = true
	}
	for _, r := range p.rows {
		row(tw, r...)
	}
	return tw.Flush()
}

func itoa(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
