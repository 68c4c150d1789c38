// Command chatd is a real-time one-to-one chat server. One executable runs
// every role (`chatd serve --role=all`) or one of them (gateway, auth, chat)
// as a replica of a split deployment. See README.md.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatd/chatd/app"
	"github.com/chatd/chatd/bench"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "chatd",
		Short:         "chatd is a real-time one-to-one chat server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), versionCmd(), probeCmd(), bench.Command())
	return root
}

func serveCmd() *cobra.Command {
	var configPath, pprofAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run chatd (every role by default)",
		Long: `Run chatd. --role picks the modules: all (default: auth, chat and the web UI
in one process with SQLite and the in-process broker), or gateway, auth, chat
(a comma list is allowed) for a split deployment over Redis and MongoDB.
Settings come from config.yaml (or --config), CHATD_* environment variables
and flags, flags winning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.LoadConfig(cmd.Flags(), configPath)
			if err != nil {
				return err
			}
			log := app.NewLogger(cfg.Log, os.Stderr)
			a, err := app.New(cfg, log)
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				stopPprof, err := startPprof(pprofAddr, log)
				if err != nil {
					return err
				}
				defer stopPprof()
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := a.Start(ctx); err != nil {
				return err
			}
			serveErr := a.Wait(ctx)
			stop()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
			defer cancel()
			if err := a.Shutdown(shutdownCtx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return serveErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "config file (default ./config.yaml when present; env CHATD_CONFIG)")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve net/http/pprof (CPU, heap, mutex, block profiles, execution trace) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	app.AddFlags(f)
	return cmd
}

// probeCmd is the container health check: the runtime image has no shell
// or curl, so the binary checks its own /readyz.
func probeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 if GET URL answers 200 (a health check for containers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client := &http.Client{Timeout: 3 * time.Second}
			resp, err := client.Get(args[0])
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("probe %s: %s", args[0], resp.Status)
			}
			return nil
		},
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "chatd %s %s\n", app.BuildVersion(), runtime.Version())
		},
	}
}
