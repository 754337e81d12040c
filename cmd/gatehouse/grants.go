package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/approval"
)

func (c *cli) newGrantsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "grants",
		Aliases: []string{"grant"},
		Short:   "Request, approve, list and revoke time-bound access grants",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.newGrantsRequestCmd(), c.newGrantsListCmd(),
		c.newGrantsActionCmd("approve", "Approve a grant: it is in force from now for its duration"),
		c.newGrantsActionCmd("deny", "Deny a grant; the requester sees your reason"),
		c.newGrantsActionCmd("revoke", "End a grant now; live sessions lose it at their next statement"))
	return cmd
}

func (c *cli) newGrantsRequestCmd() *cobra.Command {
	var req adminapi.GrantRequest
	var output string
	cmd := &cobra.Command{
		Use:   "request --connection NAME --group GROUP --for DURATION --reason TEXT",
		Short: "Ask to be a member of GROUP on a connection for a while (an approver decides)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if req.Connection == "" || req.Group == "" || req.Duration == "" || strings.TrimSpace(req.Reason) == "" {
				return usagef("--connection, --group, --for and --reason are all required")
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			g, err := cl.RequestGrant(cmd.Context(), req)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, g)
			}
			fmt.Fprintf(c.stdout, "grant %s requested (%s); an approver runs: gatehouse grants approve %s\n", g.ID, g.Status, g.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Connection, "connection", "", "connection the access is for")
	f.StringVar(&req.Group, "group", "", "group to be a member of on that connection")
	f.StringVar(&req.Duration, "for", "", "how long, once approved (e.g. 30m, 2h; at most 168h)")
	f.StringVar(&req.Reason, "reason", "", "why you need it (approvers read it)")
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) newGrantsListCmd() *cobra.Command {
	var f approval.GrantFilter
	var status, output string
	cmd := &cobra.Command{
		Use:     "list [--status S]",
		Aliases: []string{"ls"},
		Short:   "List grants you may see (admins: all, with history), most recent first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			f.Status = approval.GrantStatus(status)
			gs, err := cl.ListGrants(cmd.Context(), f)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, gs)
			}
			tw := newTable(c.stdout)
			row(tw, "ID", "STATUS", "REQUESTER", "CONNECTION", "GROUP", "FOR", "EXPIRES", "REASON")
			for _, g := range gs {
				exp := "-"
				if !g.ExpiresAt.IsZero() {
					exp = g.ExpiresAt.Local().Format(time.DateTime)
				}
				row(tw, g.ID, string(g.Status), g.Requester.Subject, g.Connection, g.Group, g.Duration.String(), exp, cell(g.Reason, 50))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only grants with this status: pending, active, expired, denied, revoked")
	cmd.Flags().StringVar(&f.Connection, "connection", "", "only grants on this connection")
	cmd.Flags().StringVar(&f.Subject, "principal", "", "only grants requested by this subject")
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) newGrantsActionCmd(verb, short string) *cobra.Command {
	var reason, output string
	cmd := &cobra.Command{
		Use:   verb + " ID [--reason TEXT]",
		Short: short,
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if verb == "deny" && strings.TrimSpace(reason) == "" {
				return usagef("deny needs --reason: the requester sees it")
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			g, err := cl.GrantAction(cmd.Context(), args[0], verb, reason)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, g)
			}
			fmt.Fprintf(c.stdout, "grant %s: %s (%s)\n", g.ID, g.Status, g.Outcome)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to deny; recorded)")
	addOutputFlag(cmd, &output)
	return cmd
}
