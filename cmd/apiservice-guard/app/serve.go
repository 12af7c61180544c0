package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"apiservice-guard.io/apiservice-guard/audit"
	"apiservice-guard.io/apiservice-guard/cabundle"
	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/internal/memlimit"
	"apiservice-guard.io/apiservice-guard/internal/safelog"
	"apiservice-guard.io/apiservice-guard/policies"
	"apiservice-guard.io/apiservice-guard/webhook"
)

// serveOptions are the flags of the serve command.
type serveOptions struct {
	kubeconfig        string
	configPath        string
	certs             certOptions
	host              string
	port              int
	metricsAddr       string
	probeAddr         string
	pprofAddr         string
	controlPlaneCIDRs []string
	zap               zap.Options

	// caBundleSyncInterval is the caBundle syncer's Interval; 0 disables it.
	caBundleSyncInterval time.Duration

	// leaderElect makes one replica (the holder of a Lease in
	// leaderElectionNamespace) run the background writers.
	leaderElect             bool
	leaderElectionNamespace string
	// auditInterval is the time between full audit scans; 0 turns the
	// audit off.
	auditInterval   time.Duration
	reportAPI       string
	auditMaxResults int
	backendDial     string
	maxConnections  int
	reviewTimeout   time.Duration
	// shutdownDelay is how long a stopping guard stays up, not ready, so
	// that it leaves the Service's endpoints before it stops serving.
	shutdownDelay time.Duration
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: in-cluster configuration")
	f.StringVar(&o.configPath, "config", "", "policy config file (YAML); default: every rule at its default action")
	o.certs.bind(f)
	f.StringVar(&o.host, "host", "", "address the webhook server listens on; default: all")
	f.IntVar(&o.port, "port", 9443, "port the webhook server listens on")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", `Prometheus metrics address; "0" disables`)
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.StringVar(&o.pprofAddr, "pprof-bind-address", "", `address of Go's /debug/pprof profiles, for profiling the guard; "" (the default) disables`)
	f.StringArrayVar(&o.controlPlaneCIDRs, "control-plane-cidr", nil,
		"CIDR the control plane connects from (repeatable), e.g. a GKE master-ipv4-cidr")
	f.DurationVar(&o.caBundleSyncInterval, "cabundle-sync-interval", cabundle.DefaultInterval,
		"how often the caBundle of APIServices annotated cert-manager.io/inject-ca-from(-secret) is re-synced from its source; 0 disables")
	f.BoolVar(&o.leaderElect, "leader-elect", true,
		"elect a leader (a Lease in --leader-election-namespace) to run the caBundle sync and the audit; every replica serves admission")
	f.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"namespace of the leader election Lease; default: the guard's own namespace when it runs in a cluster")
	f.DurationVar(&o.auditInterval, "audit-interval", 10*time.Minute,
		"time between full audit scans of existing objects (changes are audited as they happen); 0 turns the audit off")
	f.StringVar(&o.reportAPI, "report-api", string(audit.APIAuto),
		"where audit results go: auto (openreports.io if served, else wgpolicyk8s.io, else none), openreports, wgpolicyk8s or none")
	f.IntVar(&o.auditMaxResults, "audit-max-results", 50, "most results in one audit report; the rest are counted in an annotation")
	f.DurationVar(&o.reviewTimeout, "review-timeout", 0,
		"time budget of one review; 0: 80% of the timeout the API server names in each call (the webhook's timeoutSeconds), 4s if it names none. A review out of time is allowed with a warning")
	f.DurationVar(&o.shutdownDelay, "shutdown-delay", 5*time.Second,
		"on SIGTERM, how long the guard reports not ready while it still serves, so that the API server moves to other replicas first; then reviews in flight finish and it exits")
	f.IntVar(&o.maxConnections, "max-connections", 1024, "most webhook connections served at once; more wait to be accepted")
	f.StringVar(&o.backendDial, "backend-dial", cluster.DialDirect,
		"how the guard dials backends to read the serving certificates they present: direct (from its pod), none, or an HTTP CONNECT proxy into the pod network (http://HOST:PORT or unix:///PATH)")
	goflags := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.zap.BindFlags(goflags)
	f.AddGoFlagSet(goflags)
	return cmd
}

// runServe starts the manager with the webhook server and blocks until ctx ends.
func runServe(ctx context.Context, o *serveOptions) error {
	usage := func(err error) error { return &exitError{code: exitUsage, err: err} }
	rules := policies.DefaultRules()
	cfg := policies.Config{Mode: policies.ModeEnforce}
	if o.configPath != "" {
		var err error
		if cfg, err = policies.LoadConfig(o.configPath, rules); err != nil {
			return usage(err)
		}
	}
	cidrs, err := parseCIDRs(o.controlPlaneCIDRs)
	if err != nil {
		return usage(err)
	}
	if len(cidrs) > 0 { // the flag replaces the config file's controlPlane.cidrs
		cfg.ControlPlane.CIDRs = cidrs
	}
	if o.caBundleSyncInterval < 0 {
		return usage(fmt.Errorf("--cabundle-sync-interval %s: must not be negative (0 disables)", o.caBundleSyncInterval))
	}
	if o.auditInterval < 0 {
		return usage(fmt.Errorf("--audit-interval %s: must not be negative (0 turns the audit off)", o.auditInterval))
	}
	reportAPI, err := audit.ParseAPI(o.reportAPI)
	if err != nil {
		return usage(fmt.Errorf("--report-api: %w", err))
	}
	if o.auditMaxResults < 1 {
		return usage(fmt.Errorf("--audit-max-results %d: must be at least 1", o.auditMaxResults))
	}
	dial, err := cluster.BackendDialer(o.backendDial)
	if err != nil {
		return usage(err)
	}
	if o.reviewTimeout < 0 {
		return usage(fmt.Errorf("--review-timeout %s: must not be negative", o.reviewTimeout))
	}
	if o.shutdownDelay < 0 {
		return usage(fmt.Errorf("--shutdown-delay %s: must not be negative", o.shutdownDelay))
	}
	if err := o.certs.resolve(); err != nil {
		return usage(err)
	}
	if o.leaderElectionNamespace == "" && o.certs.namespace != "" {
		o.leaderElectionNamespace = o.certs.namespace
	}
	if o.maxConnections < 1 {
		return usage(fmt.Errorf("--max-connections %d: must be at least 1", o.maxConnections))
	}
	engine, err := policies.NewEngine(cfg, rules)
	if err != nil {
		return usage(err)
	}
	restCfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return usage(err)
	}
	// Logs carry text from objects: made printable and capped.
	logger := safelog.Wrap(zap.New(zap.UseFlagOptions(&o.zap)))
	ctrl.SetLogger(logger)
	ctx = ctrl.LoggerInto(ctx, logger)

	// Started before the API server is reachable (a control plane coming
	// up with its webhooks, a node reboot), the guard waits for it, not
	// ready meanwhile, rather than exiting into a crash loop.
	if err := waitForAPIServer(ctx, restCfg, o.probeAddr); err != nil {
		return err
	}
	keeper, servePair, err := o.certs.newKeeper(restCfg)
	if err != nil {
		return usage(err)
	}
	mgr, err := newManager(restCfg, o, servePair)
	if err != nil {
		return usage(err)
	}
	if keeper != nil {
		if err := o.certs.setupSelfManaged(mgr, keeper); err != nil {
			return usage(err)
		}
	}
	live, err := wire(ctx, mgr, engine, dial, o.reviewTimeout)
	if err != nil {
		return usage(err)
	}
	if err := setupAudit(ctx, mgr, engine, live, o, reportAPI); err != nil {
		return usage(err)
	}
	if err := setupCABundleSync(mgr, o.caBundleSyncInterval); err != nil {
		return usage(err)
	}
	logger.Info("starting apiservice-guard", "mode", string(cfg.Mode), "port", o.port, "certMode", o.certs.mode)
	if soft, why := memlimit.Set("/sys/fs/cgroup"); soft > 0 {
		logger.Info("soft memory limit", "bytes", soft, "from", why)
	}
	return startGracefully(ctx, mgr, o.shutdownDelay)
}

// startGracefully runs mgr until ctx ends, then shuts down in order: first
// /readyz fails and every answer closes its connection, while the webhook
// still serves for delay (the API server moves to other replicas as the
// endpoints change); then the manager stops, which lets reviews in flight
// finish and releases the leader Lease.
func startGracefully(ctx context.Context, mgr manager.Manager, delay time.Duration) error {
	var stopping atomic.Bool
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return err
	}
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-run.Done():
			return
		}
		stopping.Store(true)
		if srv, ok := mgr.GetWebhookServer().(*webhook.Server); ok {
			srv.Drain()
		}
		ctrl.LoggerFrom(ctx).Info("shutting down: not ready, still serving", "for", delay.String())
		select {
		case <-time.After(delay):
		case <-run.Done():
		}
		stop()
	}()
	return mgr.Start(run)
}

// newManager builds the manager: TLS >= 1.2 and HTTP/1.1 only on the webhook
// server, metrics and health endpoints, the Live view's cache options.
func newManager(restCfg *rest.Config, o *serveOptions, servePair func(*tls.Config)) (manager.Manager, error) {
	scheme := cluster.NewScheme()
	secure := func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		// HTTP/2 is disabled: rapid-reset and stream-multiplexing attacks
		// (CVE-2023-44487, CVE-2023-39325) need it, and the API server's
		// webhook client does not need it.
		c.NextProtos = []string{"http/1.1"}
	}
	tlsOpts := []func(*tls.Config){secure}
	if servePair != nil {
		tlsOpts = append(tlsOpts, servePair)
	}
	return ctrl.NewManager(restCfg, manager.Options{
		Scheme:                  scheme,
		Cache:                   cluster.CacheOptions(scheme),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "apiservice-guard-leader",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The background writers stop at once when leadership is lost;
		// admission goes on in every replica.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: webhook.NewServer(webhook.ServerOptions{
			Host: o.host, Port: o.port, CertDir: o.certs.dir, TLSOpts: tlsOpts,
			MaxConnections: o.maxConnections,
		}),
	})
}

// wire connects the live view, the validator and the health checks to mgr.
// Readiness turns true only once the webhook serves and the caches synced.
func wire(ctx context.Context, mgr manager.Manager, engine *policies.Engine, dial cluster.DialFunc, reviewTimeout time.Duration) (*cluster.Live, error) {
	// Secrets and Certificates are read again by name every 10 s: with the
	// audit's review of every APIService every 5 s, a rotated serving
	// certificate's Secret shows in the reports within 15 s.
	// The policy APIs served now (cluster-scoped ones, Cilium's) are
	// watched from the start; one whose CRD comes later is watched once its
	// CRD is established (FollowPolicyAPIs below).
	policyAPIs := cluster.DiscoverPolicyAPIs(mgr.GetRESTMapper())
	live, err := cluster.NewLive(ctx, mgr.GetCache(), mgr.GetAPIReader(), cluster.LiveOptions{
		ObjectTTL:  10 * time.Second,
		PolicyAPIs: policyAPIs,
		Prober:     cluster.NewProber(cluster.ProberOptions{Dial: dial}),
	})
	if err != nil {
		return nil, err
	}
	m, err := webhook.NewMetrics(metrics.Registry)
	if err != nil {
		return nil, err
	}
	hookOpts := webhook.Options{
		Engine: engine, View: live, Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("apiservice-guard"), Metrics: m,
		ReviewTimeout: reviewTimeout,
	}
	webhook.Register(mgr.GetWebhookServer(), webhook.NewValidator(hookOpts))
	webhook.RegisterMutator(mgr.GetWebhookServer(), webhook.NewMutator(hookOpts))
	var synced atomic.Bool
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		if live.WaitForCacheSync(ctx) {
			synced.Store(true)
		}
		return nil
	})); err != nil {
		return nil, err
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		log := ctrl.LoggerFrom(ctx)
		log.Info("policy APIs watched", "apis", live.PolicyAPIs().String())
		live.FollowPolicyAPIs(ctx, policyAPIsInterval, func(apis cluster.PolicyAPIs, err error) {
			if err != nil {
				log.Error(err, "watching a policy API installed after start; its policies are not judged until it is")
				return
			}
			log.Info("policy APIs watched", "apis", apis.String())
		})
		return nil
	})); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	return live, mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not synced yet")
		}
		return nil
	})
}

// policyAPIsInterval is how often the CRDs are checked for a policy API
// installed after start.
const policyAPIsInterval = 10 * time.Second

// everyReplica is a runnable that every replica runs, leader or not: the
// manager runs a plain RunnableFunc on the leader only.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

func (everyReplica) NeedLeaderElection() bool { return false }

// setupAudit adds the audit to mgr (leader only), unless --audit-interval
// is 0: it reads through the Live view's informers, lists kube-system's k0s
// objects uncached, and writes reports with the manager's client.
func setupAudit(ctx context.Context, mgr manager.Manager, engine *policies.Engine, live *cluster.Live, o *serveOptions, api audit.API) error {
	if o.auditInterval == 0 {
		return nil
	}
	m, err := audit.NewMetrics(metrics.Registry)
	if err != nil {
		return err
	}
	proxy, err := audit.NewAPIServerProxy(mgr.GetConfig(), time.Second)
	if err != nil {
		return err
	}
	a, err := audit.New(audit.Options{
		Engine: engine, View: live,
		Evidence: audit.Evidence{Proxy: proxy, Reader: mgr.GetAPIReader()},
		Sources:  audit.Sources{Cache: mgr.GetCache(), Reader: mgr.GetAPIReader()},
		Reports:  audit.ReportOptions{Client: mgr.GetClient(), Mapper: mgr.GetRESTMapper(), API: api, MaxResults: o.auditMaxResults},
		Synced:   live.WaitForCacheSync,
		Recorder: mgr.GetEventRecorder("apiservice-guard-audit"),
		Metrics:  m,
		Interval: o.auditInterval,
	})
	if err != nil {
		return err
	}
	if err := a.Watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	return mgr.Add(a)
}

// setupCABundleSync adds the caBundle syncer to mgr, unless interval is 0.
// It reads APIServices through the manager's cache (the informer the Live
// view already uses; no second cache) and Secrets and Certificates through
// the uncached APIReader, by name only.
func setupCABundleSync(mgr manager.Manager, interval time.Duration) error {
	if interval == 0 {
		return nil
	}
	s, err := cabundle.New(mgr.GetClient(), cabundle.Options{
		Reader:   mgr.GetAPIReader(),
		Interval: interval,
		Recorder: mgr.GetEventRecorder("apiservice-guard"),
	})
	if err != nil {
		return err
	}
	return s.SetupWithManager(mgr)
}

// restConfig loads a kubeconfig file, or the in-cluster configuration. It
// asks the API server for uncompressed responses: the guard runs next to
// it, and gzip would cost both sides CPU on every watch event (one gzip
// stream each) to save bandwidth the cluster network has, CPU that the
// reviews compete for.
func restConfig(kubeconfig string) (cfg *rest.Config, err error) {
	if kubeconfig == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.DisableCompression = true
	return cfg, nil
}

// parseCIDRs validates --control-plane-cidr values.
func parseCIDRs(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := policies.ParseCIDR(v)
		if err != nil {
			return nil, fmt.Errorf("--control-plane-cidr %q: %w", v, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// waitForAPIServer returns once the API server answers discovery, retrying
// with a backoff from 1 s to 30 s and logging each failure; meanwhile
// probeAddr answers /healthz ok and /readyz not ready. It returns ctx's
// error when ctx ends first.
func waitForAPIServer(ctx context.Context, cfg *rest.Config, probeAddr string) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 5 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := dc.ServerVersion(); err == nil {
		return nil
	}
	logger := ctrl.LoggerFrom(ctx)
	var probes *http.Server
	if probeAddr != "" && probeAddr != "0" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "waiting for the API server", http.StatusServiceUnavailable)
		})
		probes = &http.Server{Addr: probeAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = probes.ListenAndServe() }()
		defer func() { _ = probes.Close() }()
	}
	delay := time.Second
	for {
		_, err := dc.ServerVersion()
		if err == nil {
			logger.Info("API server reachable")
			return nil
		}
		logger.Info("waiting for the API server", "error", err.Error(), "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
