// Command authzctl explains and compares the OPA bundles the authz_policy
// exporter publishes: "authzctl help" lists its commands.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/authzctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	status := authzctl.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}
