package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/adminapi"
)

func (c *cli) newConnectionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "connections",
		Aliases: []string{"connection", "conn"},
		Short:   "List, show, create and delete upstream connections",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.newConnListCmd(), c.newConnShowCmd(), c.newConnCreateCmd(), c.newConnDeleteCmd())
	return cmd
}

func (c *cli) newConnListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List connections",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			conns, err := cl.ListConnections(cmd.Context())
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			if output == "json" {
				return printJSON(c.stdout, conns)
			}
			tw := newTable(c.stdout)
			row(tw, "NAME", "TYPE", "ADDRESS", "DATABASE", "USERNAME", "TLS", "ACCESS", "SOURCE")
			for _, k := range conns {
				row(tw, k.Name, k.Type, cell(k.Address, 0), cell(k.Database, 0), cell(k.Username, 0),
					k.TLS, cell(strings.Join(k.Access, ","), 60), k.Source)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) newConnShowCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one connection",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			k, err := cl.GetConnection(cmd.Context(), args[0])
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			return c.printConnection(k, output)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (c *cli) printConnection(k *adminapi.Connection, output string) error {
	if output == "json" {
		return printJSON(c.stdout, k)
	}
	pw := "not set"
	if k.PasswordSet {
		pw = "set (encrypted at rest)"
	}
	ca := "system roots"
	switch {
	case strings.HasPrefix(k.TLSCA, "file:"):
		ca = k.TLSCA
	case k.TLSCA != "":
		ca = "inline PEM"
	}
	tw := newTable(c.stdout)
	row(tw, "NAME:", k.Name)
	row(tw, "TYPE:", k.Type)
	row(tw, "ADDRESS:", cell(k.Address, 0))
	row(tw, "DATABASE:", cell(k.Database, 0))
	row(tw, "USERNAME:", cell(k.Username, 0))
	row(tw, "PASSWORD:", pw)
	row(tw, "TLS:", k.TLS)
	if k.TLS == "verify-full" {
		row(tw, "TLS CA:", ca)
	}
	row(tw, "ACCESS:", cell(strings.Join(k.Access, ", "), 0))
	row(tw, "SOURCE:", k.Source)
	row(tw, "CREATED:", k.CreatedAt.Local().Format(time.RFC3339))
	row(tw, "UPDATED:", k.UpdatedAt.Local().Format(time.RFC3339))
	return tw.Flush()
}

func (c *cli) newConnCreateCmd() *cobra.Command {
	var (
		req                 adminapi.ConnectionRequest
		passwordFile, pwEnv string
		caFile, output      string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --address HOST:PORT --username USER [--password-file F | --password-env VAR] --access SELECTOR...",
		Short: "Create (or replace) a connection managed through the API",
		Long: `Create a connection, or replace one created earlier through the API.
Connections defined in the config file cannot be changed here.

The upstream password is read from a file (--password-file, "-" for stdin) or
an environment variable (--password-env), never from a flag value, so it does
not end up in shell history or the process list. It is encrypted at rest and
never shown again.

Access selectors: group:NAME, sub:SUBJECT, client:CLIENT_ID or *.`,
		Example: `  gatehouse connections create --name orders --address db.internal:5432 \
    --database orders --username gatehouse --password-env ORDERS_PW \
    --tls verify-full --access group:analysts --access sub:etl-bot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if passwordFile != "" && pwEnv != "" {
				return usagef("use either --password-file or --password-env, not both")
			}
			var err error
			switch {
			case passwordFile != "":
				req.Password, err = c.readSecretFile(passwordFile)
			case pwEnv != "":
				req.Password = c.getenv(pwEnv)
				if req.Password == "" {
					err = usagef("environment variable %s is empty or unset", pwEnv)
				}
			}
			if err != nil {
				return err
			}
			if caFile != "" {
				if req.TLSCA != "" {
					return usagef("use either --tls-ca or --tls-ca-file, not both")
				}
				b, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("reading --tls-ca-file: %w", err)
				}
				req.TLSCA = string(b)
			}
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			k, err := cl.CreateConnection(cmd.Context(), req)
			if err != nil {
				return explain(cl.BaseURL, err)
			}
			return c.printConnection(k, output)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "connection name, 1-63 of A-Z a-z 0-9 _ - (clients use it as the database name)")
	f.StringVar(&req.Type, "type", "postgres", "connection type")
	f.StringVar(&req.Address, "address", "", "upstream host:port (port defaults to 5432)")
	f.StringVar(&req.Database, "database", "", "upstream database (default: the connection name)")
	f.StringVar(&req.Username, "username", "", "upstream user")
	f.StringVar(&passwordFile, "password-file", "", `file holding the upstream password ("-" = stdin); one trailing newline is dropped`)
	f.StringVar(&pwEnv, "password-env", "", "environment variable holding the upstream password")
	f.StringVar(&req.TLS, "tls", "", "upstream TLS: disable, require or verify-full (default: disable on loopback, else require)")
	f.StringVar(&req.TLSCA, "tls-ca", "", `CA for verify-full: "file:/path" on the gateway host, or PEM text`)
	f.StringVar(&caFile, "tls-ca-file", "", "local PEM file with the CA for verify-full (sent inline)")
	f.StringArrayVar(&req.Access, "access", nil, "principal selector allowed to connect (repeatable)")
	addOutputFlag(cmd, &output)
	for _, n := range []string{"name", "address", "username"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// readSecretFile reads a secret from path or stdin ("-"), dropping one
// trailing line break as editors and `echo` add it.
func (c *cli) readSecretFile(path string) (string, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(c.stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("reading --password-file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", usagef("--password-file %s is empty", path)
	}
	return s, nil
}

func (c *cli) newConnDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a connection created through the API",
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			if err := cl.DeleteConnection(cmd.Context(), args[0]); err != nil {
				return explain(cl.BaseURL, err)
			}
			_, err = fmt.Fprintf(c.stdout, "connection %q deleted\n", args[0])
			return err
		},
	}
}

// exactArgs is cobra.ExactArgs with a usage error naming the argument.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s (got %d arguments)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
