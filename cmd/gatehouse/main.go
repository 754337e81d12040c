// Command gatehouse is the gatehouse binary: `gatehouse serve` runs the
// gateway, and the other commands are clients of its admin API (connections,
// audit events, whoami) and its dev token issuer (token).
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// cli carries what commands share; tests build one per in-process run.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	http           *http.Client  // nil = adminapi default
	pollInterval   time.Duration // audit tail --follow; 0 = 1s

	api, token string // persistent flags, resolved against the environment in apiClient
}

// usageError marks errors in how a command was called (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the CLI and returns the process exit code. It prints at most
// one line on stderr for an error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := c.newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "gatehouse: "+oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return exitUsage
	}
	return exitError
}

// isCobraUsageError recognises cobra's own argument errors, which it does
// not type.
func isCobraUsageError(err error) bool {
	m := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "required flag(s)", "invalid argument", "flag needs an argument"} {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (c *cli) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Identity-aware access gateway for databases, with policy and audit",
		Long: `gatehouse lets AI agents and scripts reach databases with an OIDC token
instead of a database secret. It verifies the token, connects upstream with
credentials it holds, and decides and audits every statement.

Client commands talk to a running gateway's admin API (--api, GATEHOUSE_API)
with a bearer token (--token, GATEHOUSE_TOKEN).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A bare `gatehouse` shows help rather than doing anything.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q", args[0])
			}
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&c.api, "api", "", "admin API base URL (env GATEHOUSE_API; default "+defaultAPI+")")
	pf.StringVar(&c.token, "token", "", "bearer token for the admin API (env GATEHOUSE_TOKEN)")
	root.AddCommand(
		newServeCmd(),
		c.newTokenCmd(),
		c.newWhoAmICmd(),
		c.newConnectionsCmd(),
		c.newAuditCmd(),
		c.newReviewsCmd(),
		c.newGrantsCmd(),
		c.newPolicyCmd(),
		c.newVersionCmd(),
	)
	return root
}
