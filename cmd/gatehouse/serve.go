package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/gateway"
)

func newServeCmd() *cobra.Command {
	var (
		cfgPath string
		dev     bool
		drain   time.Duration
		cpuProf string
		accept  bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Long: `Run the gateway: the PostgreSQL listener, the admin API (/api/v1), /healthz,
/readyz and /metrics.

--dev turns on the built-in OIDC issuer (tokens for any subject from
"gatehouse token"), a generated self-signed TLS certificate and a generated
secret key in data_dir. It is for trying gatehouse out, never for production.

SIGHUP reloads the policies file (policies_file) without dropping sessions.
On SIGINT/SIGTERM the gateway stops accepting, lets live sessions finish for
--drain-timeout, then ends them and flushes the audit log.

At start the gateway checks its audit chain in the store against the newest
signed checkpoint and the state file in data_dir, and refuses to start when
the store was changed while it was down. --audit-accept-break starts it
anyway, once: a new chain segment begins with a signed marker event that
records what was found (docs/audit.md). Run ` + "`gatehouse audit verify`" + ` first.`,
		Example: `  gatehouse serve --dev --config gatehouse.dev.yaml
  GATEHOUSE_SECRET_KEY=$(openssl rand -base64 32) gatehouse serve --config /etc/gatehouse/gatehouse.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *config.Config
			switch {
			case cfgPath != "":
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			case dev:
				cfg = config.Default()
			default:
				return usagef("--config FILE is required (or --dev to try gatehouse with built-in defaults)")
			}
			if dev {
				cfg.Identity.DevIssuer = true
			}
			log := newLogger(cfg.Log, cmd.ErrOrStderr())
			if dev {
				log.Warn("DEV MODE: dev issuer, generated TLS certificate and generated secret key are ON. Do not use --dev in production.")
			}
			if cpuProf != "" {
				f, err := os.Create(cpuProf)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			ctx := cmd.Context()
			g, err := gateway.New(ctx, gateway.Options{Config: cfg, Dev: dev, Logger: log, AcceptAuditBreak: accept})
			if err != nil {
				return err
			}
			if err := g.Start(); err != nil {
				g.Shutdown(context.Background())
				return err
			}
			if dev {
				printDevHints(cmd.ErrOrStderr(), cfg, g)
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
		wait:
			for {
				select {
				case <-hup:
					// SIGHUP reloads the policies file; sessions stay up.
					if err := g.ReloadPolicies(); err != nil {
						log.Error("policy reload failed; the previous policies stay in force", "err", err)
					}
				case <-ctx.Done():
					break wait
				}
			}
			log.Info("shutting down", "drain_timeout", drain.String())
			sctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			return g.Shutdown(sctx)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().BoolVar(&dev, "dev", false, "development mode: dev token issuer, generated TLS cert and secret key")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long live sessions may continue after a shutdown signal")
	cmd.Flags().BoolVar(&accept, "audit-accept-break", false, "start although the audit chain's startup check failed, recording the break in a new signed chain segment (one start only; see docs/audit.md)")
	cmd.Flags().StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile to this file until shutdown (performance work)")
	cmd.Flags().MarkHidden("cpuprofile")
	return cmd
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func printDevHints(w io.Writer, cfg *config.Config, g *gateway.Gateway) {
	api := "http://" + g.Addr("api")
	fmt.Fprintf(w, "\ngatehouse is running in DEV MODE.\n  API:        %s\n", api)
	if pg := g.Addr("postgres"); pg != "" {
		host, port, _ := strings.Cut(pg, ":")
		db := "NAME"
		if len(cfg.Connections) > 0 {
			db = cfg.Connections[0].Name
		}
		fmt.Fprintf(w, "  PostgreSQL: %s\n\nTry it:\n  export PGPASSWORD=$(gatehouse token --api %s --subject me --group developers)\n  psql \"host=%s port=%s dbname=%s user=me\" -c 'select 1'\n\n",
			pg, api, host, port, db)
	}
}
