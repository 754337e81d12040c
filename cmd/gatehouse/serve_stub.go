package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServeCmd is a placeholder until serve.go (the gateway wiring) lands;
// delete this file then.
func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway (not yet implemented)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("serve is not yet implemented")
		},
	}
}
