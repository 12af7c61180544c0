// Command apiservice-guard is an admission webhook that keeps aggregated APIs
// (KEDA, metrics-server, prometheus-adapter) reachable and verifiable.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"apiservice-guard.io/apiservice-guard/cmd/apiservice-guard/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.MainContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
