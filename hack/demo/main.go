// Command demo is `make demo`: it starts a local kube-apiserver + etcd, the
// guard in front of it, and a stand-in KEDA metrics adapter on 127.0.0.1, then
// walks through examples/ with kubectl, printing kubectl's own output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
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
	say("Starting kube-apiserver v1.37 + etcd (built by hack/tools.sh) and installing the guard's webhook from manifests/base")
	cp, err := harness.Start(harness.Options{WebhookPaths: []string{filepath.Join("manifests", "base", "webhook.yaml")}})
	if err != nil {
		return err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping control plane:", err)
		}
		os.RemoveAll(cp.Dir)
	}()
	guard, err := cp.StartGuard(o.guard, "mode: enforce\n")
	if err != nil {
		return err
	}
	defer func() {
		if err := guard.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: guard exit:", err)
		}
	}()
	say("Guard is ready (log: %s)", guard.LogPath)
	d := &demo{cp: cp, dir: filepath.Join(o.examples, "cabundle-mismatch")}
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
	cp      *harness.ControlPlane
	dir     string
	adapter *adapter.Adapter
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
		{"Apply the fixed caBundle:", []string{"apply", "--server-side", "-f", d.file("fixed.yaml")}, "True"},
		{"Available again:", []string{"get", "apiservice", name}, ""},
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

// step is one kubectl command of a walkthrough, with what to wait for after it.
type step struct {
	explain string
	args    []string
	wait    string // Available status of the walkthrough's APIService to wait for
}

// run runs the steps, echoing each command and its output.
func (d *demo) run(ctx context.Context, steps []step) error {
	for _, s := range steps {
		fmt.Println()
		say("%s", s.explain)
		d.kubectl(ctx, s.args...)
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
