package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/identity"
)

func (c *cli) newTokenCmd() *cobra.Command {
	var (
		subject string
		groups  []string
		ttl     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --subject S [--group G]... [--ttl D]",
		Short: "Print a token from the gateway's dev issuer",
		Long: `Print a token from the dev issuer of a gateway started in dev mode.

The dev issuer only hands out tokens for arbitrary subjects to callers on the
gateway's own host. Use the token as the password of a PostgreSQL client or as
GATEHOUSE_TOKEN for the other commands:

  export GATEHOUSE_TOKEN=$(gatehouse token --subject alice --group admins)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return usagef("--ttl must be positive")
			}
			base, err := c.apiURL()
			if err != nil {
				return err
			}
			tok, err := identity.FetchDevToken(cmd.Context(), base, subject, groups, ttl)
			if err != nil {
				return explain(base, err)
			}
			_, err = fmt.Fprintln(c.stdout, tok)
			return err
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "subject (sub claim) of the token; also its client id")
	cmd.Flags().StringArrayVar(&groups, "group", nil, "group to put in the token (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, e.g. 30m or 8h (default: the issuer's, 1h)")
	_ = cmd.MarkFlagRequired("subject")
	return cmd
}
