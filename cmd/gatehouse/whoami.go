package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (c *cli) newWhoAmICmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity the gateway sees in your token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			w, err := cl.WhoAmI(cmd.Context())
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, w)
			}
			tw := newTable(c.stdout)
			row(tw, "SUBJECT:", cell(w.Subject, 0))
			row(tw, "ISSUER:", cell(w.Issuer, 0))
			row(tw, "GROUPS:", cell(strings.Join(w.Groups, ", "), 0))
			row(tw, "CLIENT:", cell(w.ClientID, 0))
			for _, a := range w.Act {
				row(tw, "ACTING FOR:", cell(a.Subject+" "+a.ClientID, 0))
			}
			exp := "-"
			if !w.Expiry.IsZero() {
				exp = w.Expiry.Local().Format(time.RFC3339)
			}
			row(tw, "EXPIRES:", exp)
			admin := "no"
			if w.Admin {
				admin = "yes"
			}
			row(tw, "ADMIN:", admin)
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
