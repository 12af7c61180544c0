package servingcert

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultSecret          = "apiservice-guard-certs"
	DefaultWebhookConfig   = "apiservice-guard"
	DefaultFieldManager    = "apiservice-guard"
	DefaultCALifetime      = 5 * 365 * 24 * time.Hour
	DefaultServingLifetime = 365 * 24 * time.Hour
	DefaultPropagation     = 5 * time.Second
)

// Options configure a Keeper and a Rotator.
type Options struct {
	// Namespace is the guard's namespace, where its Secret and webhook
	// Service are. Required.
	Namespace string
	// Service is the guard's webhook Service: the serving certificate is
	// for <Service>.<Namespace>.svc and <Service>.<Namespace>.svc.cluster.local.
	// Required.
	Service string
	// Secret names the Secret in Namespace holding the CA and the serving
	// pair. Default: DefaultSecret.
	Secret string
	// WebhookConfigurations name the guard's own Validating and Mutating
	// WebhookConfigurations (each name is looked up as both kinds), whose
	// caBundle the Rotator keeps. Default: [DefaultWebhookConfig].
	WebhookConfigurations []string
	// CALifetime is how long a CA is valid; it is renewed at 2/3 of it and
	// stays in the caBundle until it expires. Default: 5 years.
	CALifetime time.Duration
	// ServingLifetime is how long a serving certificate is valid (never past
	// its CA); it is renewed at 2/3 of it. Default: 1 year.
	ServingLifetime time.Duration
	// Propagation is how long a new CA is trusted by every webhook
	// configuration before serving certificates are issued from it: the
	// time the API server takes to see a webhook configuration change.
	// Default: 5s.
	Propagation time.Duration
	// FieldManager is the field manager of every write. Default:
	// DefaultFieldManager.
	FieldManager string
	// Registry, when set, gets the package's metrics.
	Registry prometheus.Registerer
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" || o.Service == "" {
		return o, errors.New("servingcert: the guard's namespace and Service are required")
	}
	if o.Secret == "" {
		o.Secret = DefaultSecret
	}
	if len(o.WebhookConfigurations) == 0 {
		o.WebhookConfigurations = []string{DefaultWebhookConfig}
	}
	if o.CALifetime <= 0 {
		o.CALifetime = DefaultCALifetime
	}
	if o.ServingLifetime <= 0 {
		o.ServingLifetime = DefaultServingLifetime
	}
	if o.Propagation <= 0 {
		o.Propagation = DefaultPropagation
	}
	if o.FieldManager == "" {
		o.FieldManager = DefaultFieldManager
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// DNSNames are the names the serving certificate is for; the first is the
// one the API server asks for.
func (o Options) DNSNames() []string {
	svc := o.Service + "." + o.Namespace + ".svc"
	return []string{svc, svc + ".cluster.local"}
}
