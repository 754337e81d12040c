package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/adminapi"
	"github.com/gatehouse/gatehouse/internal/audit/chain"
	"github.com/gatehouse/gatehouse/internal/audit/export"
)

func (c *cli) newAuditExportCmd() *cobra.Command {
	var (
		q   adminapi.AuditExportQuery
		out string
	)
	cmd := &cobra.Command{
		Use:   "export [--since T] [--node N] [--out FILE]",
		Short: "Write the audit chain (events and signed checkpoints) as JSON lines",
		Long: `Write the audit chain as JSON lines: a header, every signed checkpoint,
the events in order, and an end record. Verify the file anywhere with
` + "`gatehouse audit verify --file FILE --public-key KEY`" + `; docs/audit.md
describes the format.`,
		Example: `  gatehouse audit export > audit.jsonl
  gatehouse audit export --since 24h --node gw-1 --out audit.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.apiClient(true)
			if err != nil {
				return err
			}
			w := c.stdout
			if out != "" && out != "-" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := cl.ExportAudit(cmd.Context(), q, w); err != nil {
				return explain(cl.BaseURL, err)
			}
			if f, ok := w.(*os.File); ok && w != c.stdout {
				return f.Sync()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Since, "since", "", "each node's chain from its first event at or after an RFC 3339 time or a duration ago (e.g. 24h)")
	f.StringVar(&q.Node, "node", "", "only this gateway node's chain")
	f.StringVar(&out, "out", "", "write to FILE (mode 0600) instead of standard output")
	return cmd
}

func (c *cli) newAuditVerifyCmd() *cobra.Command {
	var (
		file   string
		keys   []string
		q      adminapi.AuditExportQuery
		output string
	)
	cmd := &cobra.Command{
		Use:   "verify [--file FILE --public-key KEY] [--since T] [--node N]",
		Short: "Verify the audit chain: every hash, link, sequence number and checkpoint signature",
		Long: `Verify the audit chain and report the first bad position (node and
node_seq) of each chain: an edited, deleted, inserted or reordered event, a
forged checkpoint, or events missing before a signed checkpoint.

With --file, verify an export offline with nothing but the public key
(--public-key, PEM or base64; repeat it after a key rotation). Without
--file, fetch an export from the running gateway and verify it here; the
gateway's own head is then checked too. The public key is then fetched from
the gateway unless given: pass --public-key to verify independently.

Events after the last checkpoint are reported as an unsigned tail: their
content is checked, but nothing signed says none are missing. Exit code 1
when verification fails.`,
		Example: `  gatehouse audit verify --file audit.jsonl --public-key audit.pub
  gatehouse audit verify --public-key audit.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var pubs []ed25519.PublicKey
			for _, k := range keys {
				b, err := os.ReadFile(k)
				if err != nil {
					return err
				}
				p, err := chain.ParsePublicKey(b)
				if err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				pubs = append(pubs, p)
			}
			var (
				rep *export.Report
				err error
			)
			if file != "" {
				if len(pubs) == 0 {
					return usagef("--file needs --public-key: offline verification trusts nothing but the key you give")
				}
				if q != (adminapi.AuditExportQuery{}) {
					return usagef("--since and --node select what the gateway exports; they do not apply to --file")
				}
				rep, err = verifyFile(c, file, pubs)
			} else {
				rep, err = c.verifyLive(cmd, q, pubs)
			}
			if err != nil {
				return err
			}
			return printReport(c, rep, output)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "verify this export file offline (- = standard input)")
	f.StringArrayVar(&keys, "public-key", nil, "file with the audit public key (PEM or base64); repeatable")
	f.StringVar(&q.Since, "since", "", "verify each node's chain from its first event at or after this time or duration ago")
	f.StringVar(&q.Node, "node", "", "verify only this gateway node's chain")
	addOutputFlag(cmd, &output)
	return cmd
}

func verifyFile(c *cli, file string, pubs []ed25519.PublicKey) (*export.Report, error) {
	var r io.Reader = c.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	rep, err := export.Verify(r, pubs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rep, nil
}

// verifyLive streams an export from the gateway straight into the verifier.
func (c *cli) verifyLive(cmd *cobra.Command, q adminapi.AuditExportQuery, pubs []ed25519.PublicKey) (*export.Report, error) {
	cl, err := c.apiClient(true)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	if len(pubs) == 0 {
		p, err := cl.AuditPublicKey(ctx)
		if err != nil {
			return nil, explain(cl.BaseURL, err)
		}
		fmt.Fprintf(c.stderr, "gatehouse: note: verifying with the public key the gateway serves (key id %s); pass --public-key to verify independently of the gateway\n", chain.KeyID(p))
		pubs = []ed25519.PublicKey{p}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := cl.ExportAudit(ctx, q, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	rep, verr := export.Verify(pr, pubs)
	pr.CloseWithError(errors.New("verification stopped"))
	if err := <-done; err != nil && verr == nil {
		return nil, explain(cl.BaseURL, err)
	}
	if verr != nil {
		return nil, fmt.Errorf("the gateway's export: %w", verr)
	}
	return rep, nil
}

func printReport(c *cli, rep *export.Report, output string) error {
	if output == "json" {
		if err := printJSON(c.stdout, rep); err != nil {
			return err
		}
	} else {
		w := c.stdout
		for _, n := range rep.Nodes {
			status := "ok"
			if n.Broken {
				status = "BROKEN"
			}
			fmt.Fprintf(w, "node %s: %s; node_seq %d-%d (%d events), %d checkpoints, signed through node_seq %d, unsigned tail %d events\n",
				n.Node, status, n.First, n.Last, n.Events, n.Checkpoints, n.Signed, n.UnsignedTail)
			for _, b := range n.Breaks {
				rec := b.Recorded
				fmt.Fprintf(w, "node %s: CHAIN BREAK at node_seq %d: an operator started the gateway (%s) although the stored chain failed its startup check at node_seq %d (verified through node_seq %d, signed through %d, store head %d); a new segment starts here. Found: %s\n",
					n.Node, b.NodeSeq, rec.Accepted.Format(time.RFC3339), rec.FirstBad, rec.LastVerified, rec.Signed, rec.StoreHead.NodeSeq, strings.Join(rec.Findings, "; "))
			}
			if n.Pruned > 0 {
				fmt.Fprintf(w, "node %s: node_seq 1-%d pruned by retention (a valid signed prune marker vouches for the link)\n", n.Node, n.Pruned)
			}
		}
		if rep.Partial {
			fmt.Fprintln(w, "partial export: chains start where the export starts; earlier events were not checked")
		}
		if rep.Unchained > 0 {
			fmt.Fprintf(w, "%d events were written before the chain existed (schema v1) and are not covered\n", rep.Unchained)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "FAIL "+p.String())
		}
		if rep.OK() {
			fmt.Fprintf(w, "OK: %d events and %d checkpoints verified\n", rep.Events, rep.Checkpoints)
		}
	}
	if !rep.OK() {
		return fmt.Errorf("audit verification failed: %d problem(s); the first: %s", len(rep.Problems), rep.Problems[0])
	}
	return nil
}

func (c *cli) newAuditKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Generate an audit signing key (Ed25519) and print its public key",
		Long: `Write a new Ed25519 audit signing key to FILE (PEM PKCS #8, mode 0600;
never overwrites) and print its public key (PEM) on standard output. Point
audit.signing_key at FILE (file:FILE) and give the public key to whoever
verifies the audit chain. Keep FILE away from the store it vouches for.`,
		Example: `  gatehouse audit keygen --out /etc/gatehouse/audit-signing.key > audit.pub`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out FILE is required")
			}
			key, err := chain.GenerateKey()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, werr := f.Write(chain.PrivateKeyPEM(key))
			if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
				return err
			}
			_, err = c.stdout.Write(chain.PublicKeyPEM(key.Public().(ed25519.PublicKey)))
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file for the private key (must not exist)")
	return cmd
}
