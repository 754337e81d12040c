package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) newAuditPruneCmd() *cobra.Command {
	var before, output string
	cmd := &cobra.Command{
		Use:   "prune --before AGE|TIME",
		Short: "Prune old audit events behind a signed prune marker (retention)",
		Long: `Delete the running gateway's audit events older than --before (an age
such as 90d or 36h, or an RFC 3339 time), up to its newest signed
checkpoint and never its newest event. The gateway signs a prune marker
with its audit signing key, so "gatehouse audit verify" keeps verifying the
remaining chain. audit.retention does this hourly; export first what you
must keep.`,
		Example: `  gatehouse audit export --since 120d --out before-prune.jsonl
  gatehouse audit prune --before 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if before == "" {
				return usagef("--before is required (an age such as 90d, or an RFC 3339 time)")
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			res, err := cl.PruneAudit(cmd.Context(), before)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(c.stdout, res)
			}
			if !res.Pruned {
				fmt.Fprintf(c.stdout, "nothing pruned: %s\n", res.Reason)
				return nil
			}
			fmt.Fprintf(c.stdout, "pruned %d events of node %s through node_seq %d; prune marker signed by key %s\n",
				res.Deleted, res.Marker.Node, res.Marker.NodeSeq, res.Marker.KeyID)
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "prune events older than this age (90d, 36h) or RFC 3339 time")
	addOutputFlag(cmd, &output)
	return cmd
}
