package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/approval"
)

func (c *cli) newReviewsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "reviews",
		Aliases: []string{"review"},
		Short:   "List, show, approve and deny statements held for approval",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.newReviewsListCmd(), c.newReviewsShowCmd(), c.newReviewsVoteCmd(true), c.newReviewsVoteCmd(false))
	return cmd
}

func (c *cli) newReviewsListCmd() *cobra.Command {
	var (
		output, status, connection, principal string
		limit                                 int
		watch                                 bool
	)
	cmd := &cobra.Command{
		Use:     "list [--status S] [--watch]",
		Aliases: []string{"ls"},
		Short:   "List reviews you may see (as approver, requester or admin), most recent first",
		Long: `List reviews you may see, most recent first. With --watch, keep running and
print each new pending review as it arrives (until interrupted).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			f := approval.Filter{Status: approval.Status(status), Connection: connection, Subject: principal, Limit: limit}
			rs, err := cl.ListReviews(cmd.Context(), f)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if err := c.printReviews(rs, output, true); err != nil || !watch {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			seen := map[string]bool{}
			for _, r := range rs {
				seen[r.ID] = true
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				rs, err := cl.ListReviews(ctx, approval.Filter{Status: approval.Pending, Connection: connection, Subject: principal})
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return explain(cl.BaseURL, err)
				}
				var fresh []approval.Review
				for i := len(rs) - 1; i >= 0; i-- {
					if !seen[rs[i].ID] {
						seen[rs[i].ID] = true
						fresh = append(fresh, rs[i])
					}
				}
				if err := c.printReviews(fresh, output, false); err != nil {
					return err
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only reviews with this status: pending, approved, denied, expired, withdrawn, failed")
	f.StringVar(&connection, "connection", "", "only reviews on this connection")
	f.StringVar(&principal, "principal", "", "only reviews requested by this subject")
	f.IntVarP(&limit, "limit", "n", 0, "at most N reviews (default 100)")
	f.BoolVarP(&watch, "watch", "w", false, "keep printing new pending reviews until interrupted")
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) printReviews(rs []approval.Review, output string, header bool) error {
	if output == "json" {
		for _, r := range rs {
			if err := printJSONLine(c.stdout, r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(c.stdout)
	if header {
		row(tw, "ID", "STATUS", "CREATED", "CONNECTION", "REQUESTER", "APPROVALS", "STATEMENT")
	}
	for _, r := range rs {
		row(tw, r.ID, string(r.Status), r.CreatedAt.Local().Format(time.DateTime), r.Connection, r.Requester.Subject,
			fmt.Sprintf("%d/%d", r.Approvals(), r.MinApprovals), cell(r.Statement, 60))
	}
	return tw.Flush()
}

func (c *cli) newReviewsShowCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show everything an approver needs to decide one review",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			r, err := cl.GetReview(cmd.Context(), args[0])
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, r)
			}
			return printReview(c, r)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printReview(c *cli, r *approval.Review) error {
	w := c.stdout
	fmt.Fprintf(w, "Review     %s (%s)\n", r.ID, r.Status)
	fmt.Fprintf(w, "Requester  %s (issuer %s", r.Requester.Subject, r.Requester.Issuer)
	if len(r.Requester.Groups) > 0 {
		fmt.Fprintf(w, ", groups %s", strings.Join(r.Requester.Groups, ", "))
	}
	fmt.Fprintln(w, ")")
	for i, a := range r.Requester.Act {
		fmt.Fprintf(w, "  acting for[%d] %s %s\n", i, a.Subject, a.ClientID)
	}
	fmt.Fprintf(w, "Connection %s  session %s  client %s  application %s\n", r.Connection, r.SessionID, r.ClientAddr, cell(r.ApplicationName, 0))
	fmt.Fprintf(w, "Rule       %s / %s: %s\n", r.Policy, r.Rule, r.Reason)
	fmt.Fprintf(w, "Approvers  %s (need %d, have %d)\n", strings.Join(r.Approvers, ", "), r.MinApprovals, r.Approvals())
	fmt.Fprintf(w, "Created    %s, expires %s\n", r.CreatedAt.Local().Format(time.DateTime), r.ExpiresAt.Local().Format(time.DateTime))
	fmt.Fprintf(w, "Statement\n  %s\n", strings.ReplaceAll(r.Statement, "\n", "\n  "))
	for i, p := range r.Params {
		fmt.Fprintf(w, "  $%d = %s\n", i+1, p)
	}
	if len(r.History) > 0 {
		fmt.Fprintln(w, "Earlier in this session")
		for _, h := range r.History {
			fmt.Fprintf(w, "  %s\n", cell(h, 120))
		}
	}
	if len(r.Facts) > 0 {
		fmt.Fprintf(w, "Facts      %s\n", r.Facts)
	}
	for _, v := range r.Votes {
		verb := "approved"
		if !v.Approve {
			verb = "denied"
		}
		fmt.Fprintf(w, "Vote       %s %s at %s %s\n", v.Subject, verb, v.Time.Local().Format(time.DateTime), v.Reason)
	}
	if r.Outcome != "" {
		fmt.Fprintf(w, "Outcome    %s\n", r.Outcome)
	}
	fmt.Fprintf(w, "Binding    %s\n", r.Binding)
	return nil
}

func (c *cli) newReviewsVoteCmd(approve bool) *cobra.Command {
	var reason, output string
	use, short := "deny ID --reason TEXT", "Refuse a held statement; the requester sees your reason"
	if approve {
		use, short = "approve ID [--reason TEXT]", "Approve a held statement: it runs once, in the waiting session"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if !approve && strings.TrimSpace(reason) == "" {
				return usagef("deny needs --reason: the requester sees it")
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			r, err := cl.VoteReview(ctx, args[0], approve, reason)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, r)
			}
			fmt.Fprintf(c.stdout, "review %s: %s (%d/%d approvals)\n", r.ID, r.Status, r.Approvals(), r.MinApprovals)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to deny; recorded and shown to the requester)")
	addOutputFlag(cmd, &output)
	return cmd
}
