package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"apiservice-guard.io/apiservice-guard/servingcert"
)

// Certificate modes of serve.
const (
	certModeAuto        = "auto"
	certModeSelfManaged = "self-managed"
	certModeFiles       = "files"
)

// certOptions are serve's flags about its serving certificate.
type certOptions struct {
	mode        string
	dir         string
	namespace   string
	service     string
	secret      string
	webhooks    []string
	caLife      time.Duration
	servingLife time.Duration
	propagation time.Duration
}

func (c *certOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&c.mode, "cert-mode", certModeAuto,
		"where the serving certificate comes from: self-managed (the guard's own CA, in a Secret it keeps, and the caBundle of its webhook configurations), "+
			"files (tls.crt and tls.key in --cert-dir, e.g. from cert-manager) or auto (files when --cert-dir holds tls.crt, else self-managed)")
	f.StringVar(&c.dir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory holding tls.crt and tls.key (files mode); reloaded when they change")
	f.StringVar(&c.namespace, "namespace", "", "the guard's namespace (its Secret, Service and Lease); default: the namespace it runs in")
	f.StringVar(&c.service, "service-name", "apiservice-guard-webhook", "the guard's webhook Service: the self-managed certificate is for <service-name>.<namespace>.svc")
	f.StringVar(&c.secret, "cert-secret", servingcert.DefaultSecret, "Secret in --namespace holding the self-managed CA and serving certificate")
	f.StringArrayVar(&c.webhooks, "webhook-configuration", []string{servingcert.DefaultWebhookConfig},
		"name of the guard's Validating and MutatingWebhookConfiguration whose caBundle it keeps in self-managed mode (repeatable)")
	f.DurationVar(&c.caLife, "ca-lifetime", servingcert.DefaultCALifetime, "self-managed CA lifetime; renewed at 2/3, kept in the caBundle until it expires")
	f.DurationVar(&c.servingLife, "cert-lifetime", servingcert.DefaultServingLifetime, "self-managed serving certificate lifetime; renewed at 2/3")
	f.DurationVar(&c.propagation, "ca-propagation", servingcert.DefaultPropagation,
		"how long a new self-managed CA is in every webhook configuration's caBundle before serving certificates come from it")
}

// resolve checks the flags and settles auto.
func (c *certOptions) resolve() error {
	switch c.mode {
	case certModeAuto:
		if _, err := os.Stat(filepath.Join(c.dir, "tls.crt")); err == nil {
			c.mode = certModeFiles
		} else {
			c.mode = certModeSelfManaged
		}
	case certModeFiles, certModeSelfManaged:
	default:
		return fmt.Errorf("--cert-mode %q: want %s, %s or %s", c.mode, certModeAuto, certModeSelfManaged, certModeFiles)
	}
	if c.mode == certModeSelfManaged {
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"--ca-lifetime", c.caLife}, {"--cert-lifetime", c.servingLife}, {"--ca-propagation", c.propagation}} {
			if d.v <= 0 {
				return fmt.Errorf("%s %s: must be positive", d.name, d.v)
			}
		}
	}
	return nil
}

// serviceAccountNamespace is where a pod's own namespace is mounted.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is --namespace, else the namespace the guard runs in.
func (c *certOptions) ownNamespace() (string, error) {
	if c.namespace != "" {
		return c.namespace, nil
	}
	data, err := os.ReadFile(serviceAccountNamespace)
	if ns := strings.TrimSpace(string(data)); err == nil && ns != "" {
		return ns, nil
	}
	return "", errors.New("--namespace is required out of a cluster")
}

// setupSelfManaged adds the Keeper (every replica) and the Rotator (the
// leader) to mgr.
func (c *certOptions) setupSelfManaged(mgr manager.Manager, keeper *servingcert.Keeper) error {
	if err := mgr.Add(keeper); err != nil {
		return err
	}
	r, err := servingcert.NewRotator(keeper, mgr.GetClient(), mgr.GetCache(), mgr.GetAPIReader())
	if err != nil {
		return err
	}
	return mgr.Add(r)
}

// newKeeper returns the Keeper of the self-managed mode and the TLS option
// that serves its pair; nil, nil in files mode.
func (c *certOptions) newKeeper(cfg *rest.Config) (*servingcert.Keeper, func(*tls.Config), error) {
	if c.mode != certModeSelfManaged {
		return nil, nil, nil
	}
	ns, err := c.ownNamespace()
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	k, err := servingcert.NewKeeper(cs, servingcert.Options{
		Namespace: ns, Service: c.service, Secret: c.secret, WebhookConfigurations: c.webhooks,
		CALifetime: c.caLife, ServingLifetime: c.servingLife, Propagation: c.propagation,
		Registry: metrics.Registry,
	})
	if err != nil {
		return nil, nil, err
	}
	return k, func(t *tls.Config) { t.GetCertificate = k.GetCertificate }, nil
}
