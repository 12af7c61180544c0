package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/audit"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
	"apiservice-guard.io/apiservice-guard/policies"
)

// diagnoseOptions are the flags of the diagnose command.
type diagnoseOptions struct {
	kubeconfig        string
	output            string
	all               bool
	controlPlaneCIDRs []string
	backendDial       string
}

func newDiagnoseCommand() *cobra.Command {
	o := &diagnoseOptions{}
	cmd := &cobra.Command{
		Use:   "diagnose [NAME...]",
		Short: "Say why APIServices are unavailable, and what fixes it",
		Long: "diagnose walks the evidence an expert checks for each APIService backed by a Service: the aggregator's\n" +
			"condition, the spec, the Service, its ready endpoints, the guard's rules on the state now, and a request\n" +
			"through the API server's service proxy. With no NAME it diagnoses every such APIService that is not\n" +
			"Available (--all: every one). Exit 0 when all are Available, 1 when one is not, 2 on bad usage or an\n" +
			"unreachable cluster. It only reads.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiagnose(cmd.Context(), o, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: $KUBECONFIG, else ~/.kube/config, else in-cluster")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.BoolVar(&o.all, "all", false, "diagnose every APIService backed by a Service, Available or not")
	f.StringArrayVar(&o.controlPlaneCIDRs, "control-plane-cidr", nil, "CIDR the control plane connects from (repeatable)")
	f.StringVar(&o.backendDial, "backend-dial", cluster.DialNone,
		"how to dial backends to read the serving certificates they present: none (the default: a machine off the pod network would reach something else), direct (run on the pod network), or an HTTP CONNECT proxy into it (http://HOST:PORT or unix:///PATH)")
	return cmd
}

func runDiagnose(ctx context.Context, o *diagnoseOptions, names []string, stdout io.Writer) error {
	usage := func(err error) error { return &exitError{code: exitUsage, err: err} }
	if o.output != "text" && o.output != "json" {
		return usage(fmt.Errorf("-o %q: want text or json", o.output))
	}
	cidrs, err := parseCIDRs(o.controlPlaneCIDRs)
	if err != nil {
		return usage(err)
	}
	dial, err := cluster.BackendDialer(o.backendDial)
	if err != nil {
		return usage(err)
	}
	cfg := policies.Config{Mode: policies.ModeEnforce}
	cfg.ControlPlane.CIDRs = cidrs
	engine, err := policies.NewEngine(cfg, policies.DefaultRules())
	if err != nil {
		return usage(err)
	}
	restCfg, err := kubeconfigOrDefault(o.kubeconfig)
	if err != nil {
		return usage(err)
	}
	restCfg.Timeout = 10 * time.Second
	clients, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return usage(err)
	}
	// Fail fast on an unreachable cluster, before starting informers.
	if _, err := clients.Discovery().ServerVersion(); err != nil {
		return usage(fmt.Errorf("cannot reach the cluster: %w", err))
	}
	liveCtx, stop := context.WithCancel(ctx)
	defer stop()
	live, err := cluster.StartLive(liveCtx, restCfg, cluster.LiveOptions{
		SyncTimeout: 30 * time.Second,
		Prober:      cluster.NewProber(cluster.ProberOptions{Dial: dial}),
	})
	if err != nil {
		return usage(fmt.Errorf("reading the cluster: %w", err))
	}
	var targets []*apiregv1.APIService
	if len(names) > 0 {
		for _, n := range names {
			api, err := live.APIService(ctx, n)
			if apierrors.IsNotFound(err) {
				return usage(fmt.Errorf("APIService %q not found", n))
			}
			if err != nil {
				return usage(err)
			}
			targets = append(targets, api)
		}
	} else {
		var list apiregv1.APIServiceList
		if err := live.Reader().List(ctx, &list); err != nil {
			return usage(err)
		}
		for i := range list.Items {
			api := &list.Items[i]
			if api.Spec.Service != nil && (o.all || !audit.Available(api)) {
				targets = append(targets, api)
			}
		}
		slices.SortFunc(targets, func(a, b *apiregv1.APIService) int { return strings.Compare(a.Name, b.Name) })
	}
	proxy, err := audit.NewAPIServerProxy(restCfg, time.Second)
	if err != nil {
		return usage(err)
	}
	// Namespaces and kube-system's ConfigMaps are listed uncached, once
	// per diagnosis.
	reader, err := client.New(restCfg, client.Options{Scheme: cluster.NewScheme()})
	if err != nil {
		return usage(err)
	}
	ev := audit.Evidence{Proxy: proxy, Reader: reader}
	out := make([]audit.Diagnosis, 0, len(targets))
	for _, api := range targets {
		out = append(out, audit.Diagnose(ctx, engine, live, ev, api))
	}
	if err := writeDiagnoses(stdout, o.output, out); err != nil {
		return err
	}
	for _, d := range out {
		if !d.Available {
			return &exitError{code: exitFindings}
		}
	}
	return nil
}

// writeDiagnoses prints the diagnoses: the verdict first, then the chain.
func writeDiagnoses(w io.Writer, format string, ds []audit.Diagnosis) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(struct {
			Diagnoses []audit.Diagnosis `json:"diagnoses"`
		}{ds})
	}
	var b strings.Builder
	if len(ds) == 0 {
		b.WriteString("every APIService backed by a Service is Available\n")
	}
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		state := "Available"
		if !d.Available {
			state = "UNAVAILABLE"
		}
		fmt.Fprintf(&b, "APIService %s: %s\n", printable(d.APIService), state)
		if d.Cause != "" {
			fmt.Fprintf(&b, "  Cause: %s\n", printable(d.Cause))
			fmt.Fprintf(&b, "  Fix:   %s\n", printable(d.Fix))
		}
		for _, r := range d.RuledOut {
			fmt.Fprintf(&b, "  ruled out: %s\n", printable(r))
		}
		for _, s := range d.Steps {
			fmt.Fprintf(&b, "  %-9s %-12s %s\n", "["+string(s.Outcome)+"]", s.Name, printable(s.Evidence))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printable makes text from objects safe for a terminal and caps it.
func printable(s string) string { return shorten.Printable(s, maxPrinted) }

// maxPrinted caps one printed field of a diagnosis.
const maxPrinted = 1024

// kubeconfigOrDefault loads the kubeconfig as kubectl does: path when
// given, else $KUBECONFIG, else ~/.kube/config, else the in-cluster
// configuration.
func kubeconfigOrDefault(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}
