// Command demo is `make demo`: it starts a local kube-apiserver + etcd (with
// k0s's ClusterConfig CRD), the guard in front of it, and a stand-in KEDA
// metrics adapter on 127.0.0.1, then walks through examples/ with kubectl,
// printing kubectl's own output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/test/adapter"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

type options struct {
	guard    string
	examples string
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.guard, "guard", "bin/apiservice-guard", "guard binary")
	flag.StringVar(&o.examples, "examples", "examples", "examples directory")
	flag.BoolVar(&o.keep, "keep", false, "leave the control plane and the guard running until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	say("Starting kube-apiserver v1.37 + etcd (built by hack/tools.sh), installing the guard's webhook from manifests/base, k0s's ClusterConfig CRD and the OpenReports CRDs")
	cp, err := harness.Start(harness.Options{
		WebhookPaths: []string{filepath.Join("manifests", "base", "webhook.yaml")},
		// k0s's ClusterConfig kind, for the k0s incident; OpenReports'
		// Report and ClusterReport, for the audit.
		CRDPaths: []string{filepath.Join("test", "crds", "clusterconfigs.k0s.k0sproject.io.yaml"), filepath.Join("test", "crds", "reports", "openreports")},
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping control plane:", err)
		}
		os.RemoveAll(cp.Dir)
	}()
	d := &demo{cp: cp, dir: filepath.Join(o.examples, "cabundle-mismatch"), guardBin: o.guard}
	if err := d.startGuard(); err != nil {
		return err
	}
	defer func() {
		if err := d.guard.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: guard exit:", err)
		}
	}()
	// The adapter lives as long as the control plane, so that with --keep
	// the APIService stays Available.
	defer d.close()
	if err := d.caBundleIncident(ctx); err != nil {
		return err
	}
	if err := d.rotationConflictIncident(ctx); err != nil {
		return err
	}
	if err := d.networkPolicyIncident(ctx); err != nil {
		return err
	}
	if err := d.k0sIncident(ctx); err != nil {
		return err
	}
	if err := d.auditIncident(ctx); err != nil {
		return err
	}
	if o.keep {
		say("Left running. Try:  kubectl --kubeconfig %s get apiservices", cp.Kubeconfig)
		say("KUBECONFIG=%s", cp.Kubeconfig)
		say("Press Ctrl-C to stop.")
		<-ctx.Done()
	}
	say("Shutting down the guard, kube-apiserver and etcd")
	return nil
}

type demo struct {
	cp       *harness.ControlPlane
	dir      string
	adapter  *adapter.Adapter
	guardBin string
	guard    *harness.Guard
}

// startGuard starts the guard, enforcing.
func (d *demo) startGuard() error {
	g, err := d.cp.StartGuard(d.guardBin, "mode: enforce\n")
	if err != nil {
		return err
	}
	d.guard = g
	say("Guard is ready (log: %s)", g.LogPath)
	return nil
}

// auditIncident: while the guard is away, the default-deny is left alone and
// konnectivity is turned off again; back, the guard's audit reports both,
// and the repair turns the report to pass.
func (d *demo) auditIncident(ctx context.Context) error {
	title("Audit: what broke while the guard was away")
	say("The guard stops (an upgrade, a node drain). Its webhook fails open (failurePolicy: Ignore), so nothing stops these:")
	if err := d.guard.Stop(); err != nil {
		return fmt.Errorf("stopping the guard: %w", err)
	}
	netpol, k0sDir := d.example("networkpolicy-default-deny"), d.example("k0s")
	if err := d.run(ctx, []step{
		{"Someone removes the allow; the default-deny now cuts metrics-server off:", []string{"-n", "kube-system", "delete", "networkpolicy", "allow-control-plane-to-metrics-server"}, ""},
		{"A k0s upgrade writes the worker-config with konnectivity off again:", []string{"apply", "-f", k0sDir("broken-worker-config.yaml")}, ""},
	}); err != nil {
		return err
	}
	fmt.Println()
	say("The guard is back. Its audit reviews what exists and writes OpenReports reports, one per object:")
	if err := d.startGuard(); err != nil {
		return err
	}
	uid, err := d.cp.KubectlCommand(ctx, "-n", "kube-system", "get", "networkpolicy", "default-deny-ingress", "-o", "jsonpath={.metadata.uid}").Output()
	if err != nil {
		return fmt.Errorf("reading the default-deny's UID: %w", err)
	}
	report := []string{"-n", "kube-system", "get", "report", string(uid), "-o", `jsonpath={range .results[*]}{.rule}={.result}{"\n"}{end}`}
	if err := d.waitOutput(ctx, report, "networkpolicy-blocks-apiservice=fail"); err != nil {
		return err
	}
	if err := d.run(ctx, []step{
		{"APIServices get cluster-scoped reports:", []string{"get", "clusterreports", "-o", "wide"}, ""},
		{"NetworkPolicies and k0s worker-configs get reports in their namespace:", []string{"get", "reports", "-A", "-o", "wide"}, ""},
		{"The default-deny's report, with the rule that fails and its fix:", []string{"-n", "kube-system", "describe", "report", string(uid)}, ""},
		{"And an Event on the policy:", []string{"-n", "kube-system", "events", "--for", "networkpolicy/default-deny-ingress"}, ""},
		{"The repair: allow the API server on the pod port again.", []string{"apply", "-f", netpol("fixed.yaml")}, ""},
	}); err != nil {
		return err
	}
	if err := d.waitOutput(ctx, report, "networkpolicy-blocks-apiservice=pass"); err != nil {
		return err
	}
	return d.run(ctx, []step{
		{"Within seconds the report passes:", []string{"-n", "kube-system", "get", "reports"}, ""},
	})
}

// waitOutput runs kubectl args until its output contains want.
func (d *demo) waitOutput(ctx context.Context, args []string, want string) error {
	var out []byte
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, _ = d.cp.KubectlCommand(ctx, args...).CombinedOutput()
		return strings.Contains(string(out), want), nil
	})
	if err != nil {
		return fmt.Errorf("kubectl %s did not say %q within 30s: %w\n%s", strings.Join(args, " "), want, err, out)
	}
	return nil
}

// caBundleIncident: a stale caBundle takes the APIService down; the fixed one
// brings it back; the guard then refuses the stale one.
func (d *demo) caBundleIncident(ctx context.Context) error {
	title("Incident: wrong caBundle on KEDA's external metrics APIService")
	if err := d.startAdapter(); err != nil {
		return err
	}
	const name = "v1beta1.external.metrics.k8s.io"
	return d.run(ctx, []step{
		{"The adapter's namespace, serving Secret and Service:", []string{"apply", "-f", d.file("backend.yaml")}, ""},
		{"A new APIService with a stale caBundle: not Available yet, so the guard warns but lets it in:", []string{"apply", "--server-side", "-f", d.file("broken.yaml")}, "False"},
		{"The aggregator agrees it is broken:", []string{"get", "apiservice", name}, ""},
		{"Why? The guard's diagnose names the cause and the fix first, then the evidence:", []string{guardCommand, "diagnose", name}, ""},
		{"Apply the fixed caBundle:", []string{"apply", "--server-side", "-f", d.file("fixed.yaml")}, "True"},
		{"Available again:", []string{"get", "apiservice", name}, ""},
		{"diagnose agrees (exit 0):", []string{guardCommand, "diagnose", name}, ""},
		{"Now a sync re-applies the stale caBundle. The APIService is Available, so the guard denies it:", []string{"apply", "--server-side", "-f", d.file("broken.yaml")}, ""},
		{"Still Available; HPAs keep working:", []string{"get", "apiservice", name}, ""},
	})
}

// rotationConflictIncident: KEDA's certificate rotation and a GitOps tool
// keep replacing each other's caBundle; the guard names both and the fix;
// the fixed manifest lets the guard inject the CA from the serving Secret.
func (d *demo) rotationConflictIncident(ctx context.Context) error {
	title("Incident: KEDA's certificate rotation and GitOps fight over the caBundle")
	dir := d.example("cabundle-rotation-conflict")
	applyAs := func(manager, file string) []string {
		return []string{"apply", "--server-side", "--force-conflicts", "--field-manager", manager, "-f", dir(file)}
	}
	return d.run(ctx, []step{
		{"KEDA's rotation writes its CA (the same as now: nothing changes):", applyAs("keda-operator", "broken-keda-rotation.yaml"), "True"},
		{"Argo CD syncs the repository's copy back:", applyAs("argocd-controller", "broken-gitops.yaml"), "True"},
		{"KEDA notices and writes its own again: the third replacement in ten minutes, by several managers. The guard names them and the fix:", applyAs("keda-operator", "broken-keda-rotation.yaml"), "True"},
		{"Fix: turn KEDA's rotation off (--enable-cert-rotation=false), let the Secret's CA be injected directly...", []string{"-n", "keda", "annotate", "--overwrite", "secret", "keda-operator-metrics-apiserver-certs", "cert-manager.io/allow-direct-injection=true"}, ""},
		{"...and sync a manifest without caBundle that names its source. The bundle already holds that CA, so the guard leaves it as it is, byte for byte:", applyAs("argocd-controller", "fixed.yaml"), "True"},
		{"Available; from now on the guard keeps caBundle in step with the Secret:", []string{"get", "apiservice", "v1beta1.external.metrics.k8s.io"}, ""},
	})
}

// networkPolicyIncident: a kube-system default-deny would cut the API server
// off from metrics-server's pod port; the guard refuses it until the control
// plane is allowed on 10250, and refuses removing that allow afterwards.
func (d *demo) networkPolicyIncident(ctx context.Context) error {
	title("Incident: a default-deny NetworkPolicy cuts the API server off from metrics-server")
	dir := d.example("networkpolicy-default-deny")
	return d.run(ctx, []step{
		{"metrics-server: APIService -> Service 443 -> pod port named https (10250):", []string{"apply", "-f", dir("backend.yaml")}, ""},
		{"(No kubelet here: give the pod the address a CNI would.)", []string{"-n", "kube-system", "patch", "pod", "metrics-server-demo", "--subresource=status",
			"--type=merge", "-p", `{"status":{"phase":"Running","podIP":"10.244.0.15","podIPs":[{"ip":"10.244.0.15"}]}}`}, ""},
		{"A hardening default-deny for kube-system. The guard refuses it, naming what it would cut off and the rule to add:", []string{"apply", "-f", dir("broken.yaml")}, ""},
		{"Allow the API server to the pod port first, then deny the rest:", []string{"apply", "-f", dir("fixed.yaml")}, ""},
		{"Removing the allow later would cut it off again, so that is refused too:", []string{"-n", "kube-system", "delete", "networkpolicy", "allow-control-plane-to-metrics-server"}, ""},
		{"Both policies are in place:", []string{"-n", "kube-system", "get", "networkpolicies"}, ""},
	})
}

// k0sIncident: konnectivity turned off on k0s leaves the API server without a
// way into the pod network, where metrics-server runs; the guard warns on the
// worker-config and refuses ClusterConfig changes k0s cannot run with.
func (d *demo) k0sIncident(ctx context.Context) error {
	title("Incident: konnectivity off on k0s cuts the API server off from metrics-server")
	dir := d.example("k0s")
	if err := d.run(ctx, []step{
		{"metrics-server as k0s deploys it, its pod in the pod network (hostNetwork: false):", []string{"apply", "-f", dir("backend.yaml")}, ""},
	}); err != nil {
		return err
	}
	if err := d.waitGuardWarns(ctx, dir("broken-worker-config.yaml"), "k0s-konnectivity-disabled"); err != nil {
		return err
	}
	if err := d.run(ctx, []step{
		{"Controllers started with --disable-components=konnectivity-server: k0s writes the worker-config with konnectivity off ({\"agentPort\":8132}). " +
			"The controllers have no route into the pod network, so the guard warns, naming the APIService:", []string{"apply", "-f", dir("broken-worker-config.yaml")}, ""},
		{"Fix: keep konnectivity (k0s then writes \"enabled\":true). No warning:", []string{"apply", "-f", dir("fixed-worker-config.yaml")}, ""},
	}); err != nil {
		return err
	}
	return d.k0sClusterConfig(ctx, dir)
}

// k0sClusterConfig: the dynamic-config ClusterConfig, and two changes k0s
// cannot run with, which the guard refuses.
func (d *demo) k0sClusterConfig(ctx context.Context, dir func(string) string) error {
	apply := func(file string) []string { return []string{"apply", "--server-side", "-f", file} }
	get := []string{"-n", "kube-system", "get", "clusterconfig", "k0s", "-o",
		`jsonpath=provider={.spec.network.provider} konnectivity={.spec.konnectivity.agentPort}/{.spec.konnectivity.adminPort}{"\n"}`}
	return d.run(ctx, []step{
		{"k0s's dynamic config, the ClusterConfig \"k0s\" in kube-system (kube-router, konnectivity on 8132/8133):", apply(dir("clusterconfig.yaml")), ""},
		{"An edit puts konnectivity's adminPort on its agentPort. konnectivity-server could not start; the guard denies it:", apply(dir("broken-clusterconfig-ports.yaml")), ""},
		{"An edit switches the CNI to calico, which k0s cannot do to a running cluster; the guard denies it:", apply(dir("broken-clusterconfig-provider.yaml")), ""},
		{"The ClusterConfig is unchanged:", get, ""},
	})
}

// waitGuardWarns dry-runs `kubectl apply -f file` until the guard warns with
// rule. The guard sees objects through its informer cache, a moment after the
// API server has them: this waits for the pods just created, without a dry
// run's output standing in for the real apply's.
func (d *demo) waitGuardWarns(ctx context.Context, file, rule string) error {
	var out []byte
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, _ = d.cp.KubectlCommand(ctx, "apply", "--dry-run=server", "-f", file).CombinedOutput()
		return strings.Contains(string(out), "["+rule+"]"), nil
	})
	if err != nil {
		return fmt.Errorf("the guard did not warn [%s] on a dry run of %s: %w\n%s", rule, file, err, out)
	}
	return nil
}

// step is one kubectl command of a walkthrough, with what to wait for after it.
type step struct {
	explain string
	args    []string
	wait    string // Available status of the walkthrough's APIService to wait for
}

// guardCommand, first in a step's args, runs the guard binary instead of
// kubectl.
const guardCommand = "apiservice-guard"

// run runs the steps, echoing each command and its output.
func (d *demo) run(ctx context.Context, steps []step) error {
	for _, s := range steps {
		fmt.Println()
		say("%s", s.explain)
		if len(s.args) > 0 && s.args[0] == guardCommand {
			d.guardCmd(ctx, s.args[1:]...)
		} else {
			d.kubectl(ctx, s.args...)
		}
		if s.wait != "" {
			if err := d.waitAvailable(ctx, "v1beta1.external.metrics.k8s.io", s.wait); err != nil {
				return err
			}
		}
	}
	return nil
}

// startAdapter serves the example Secret's certificate on 127.0.0.1:<port of
// the example Service>, as the ExternalName Service expects.
func (d *demo) startAdapter() error {
	secret, err := readSecret(d.file("backend.yaml"))
	if err != nil {
		return err
	}
	leaf, err := certs.ParseKeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	if err != nil {
		return fmt.Errorf("example serving certificate: %w", err)
	}
	ca, err := certs.ParseKeyPair(secret.Data["ca.crt"], nil)
	if err != nil {
		return fmt.Errorf("example CA: %w", err)
	}
	a, err := adapter.Start(adapter.Options{
		Group: "external.metrics.k8s.io", Version: "v1beta1",
		Namespace: "keda", Service: "keda-operator-metrics-apiserver", Addr: "127.0.0.1:6443",
	})
	if err != nil {
		return fmt.Errorf("%w (the demo adapter needs 127.0.0.1:6443 free)", err)
	}
	d.adapter = a
	say("Stand-in KEDA metrics adapter serving on 127.0.0.1:6443 with the example's certificate")
	return a.Serve(ca, leaf)
}

// guardCmd runs the guard binary against the demo's cluster, echoing the
// command and its output.
func (d *demo) guardCmd(ctx context.Context, args ...string) {
	fmt.Printf("$ apiservice-guard %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.guardBin, append(args, "--kubeconfig", d.cp.Kubeconfig)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			fmt.Printf("(apiservice-guard exited with status %d)\n", ee.ExitCode())
			return
		}
		fmt.Printf("(apiservice-guard failed: %v)\n", err)
	}
}

// kubectl runs kubectl, echoing the command and its output. Failures are
// part of the demo, so they are printed, not returned.
func (d *demo) kubectl(ctx context.Context, args ...string) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	cmd := d.cp.KubectlCommand(ctx, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			fmt.Printf("(kubectl exited with status %d)\n", ee.ExitCode())
			return
		}
		fmt.Printf("(kubectl failed: %v)\n", err)
	}
}

// waitAvailable waits for the aggregator's verdict on the APIService.
func (d *demo) waitAvailable(ctx context.Context, name, status string) error {
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := d.cp.KubectlCommand(ctx, "get", "apiservice", name, "-o",
			`jsonpath={.status.conditions[?(@.type=="Available")].status}`).Output()
		return err == nil && string(out) == status, nil
	})
}

func (d *demo) file(name string) string { return filepath.Join(d.dir, name) }

// example returns a function naming files of another example directory.
func (d *demo) example(dir string) func(string) string {
	return func(name string) string { return filepath.Join(filepath.Dir(d.dir), dir, name) }
}

// close stops what the demo started besides the control plane and the guard.
func (d *demo) close() {
	if d.adapter != nil {
		d.adapter.Close()
	}
}

// readSecret finds the Secret in a multi-document manifest.
func readSecret(path string) (*corev1.Secret, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var s corev1.Secret
		if err := yaml.Unmarshal([]byte(doc), &s); err == nil && s.Kind == "Secret" {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("%s: no Secret", path)
}

func title(s string) { fmt.Printf("\n=== %s ===\n", s) }

func say(format string, args ...any) { fmt.Printf("--> "+format+"\n", args...) }
