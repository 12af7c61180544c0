package servingcert

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	admissionregv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"apiservice-guard.io/apiservice-guard/certs"
)

// Rotator keeps the Secret's material and the webhook configurations'
// caBundle (see the package comment). It runs on the elected leader only.
type Rotator struct {
	opts   Options
	keeper *Keeper
	// client writes (server-side apply, and create of the Secret); cache
	// reads the webhook configurations and tells of their changes; reader
	// reads the Secret by name, uncached.
	client client.Client
	cache  cache.Cache
	reader client.Reader
	writes *prometheus.CounterVec
}

// NewRotator returns a Rotator working with the Keeper's options.
func NewRotator(k *Keeper, c client.Client, ca cache.Cache, reader client.Reader) (*Rotator, error) {
	r := &Rotator{opts: k.opts, keeper: k, client: c, cache: ca, reader: reader,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiservice_guard_certificate_writes_total",
			Help: "Writes of the self-managed certificates: the Secret (what changed: ca, serving, bundle, published) and the caBundle of each webhook configuration.",
		}, []string{"object", "change"})}
	if r.opts.Registry != nil {
		if err := r.opts.Registry.Register(r.writes); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// NeedLeaderElection is true: one writer.
func (r *Rotator) NeedLeaderElection() bool { return true }

// Start runs passes until ctx ends: on each change of the Secret or of a
// webhook configuration, when the material next needs a look, and after a
// failure with a backoff from 1 s to 1 min.
func (r *Rotator) Start(ctx context.Context) error {
	for _, obj := range []client.Object{&admissionregv1.ValidatingWebhookConfiguration{}, &admissionregv1.MutatingWebhookConfiguration{}} {
		inf, err := r.cache.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.kickFor(o) },
			UpdateFunc: func(_, o any) { r.kickFor(o) },
			DeleteFunc: func(o any) { r.kickFor(o) },
		})
		if err != nil {
			return err
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
	}
	logger := log.FromContext(ctx).WithName("servingcert")
	ctx = log.IntoContext(ctx, logger)
	backoff := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.keeper.kick:
		case <-timer.C:
		}
		wait, err := r.pass(ctx)
		if err != nil && ctx.Err() == nil {
			backoff = min(max(2*backoff, time.Second), time.Minute)
			logger.Info("certificate pass failed; retrying", "error", err.Error(), "retryIn", backoff.String())
			wait = backoff
		} else {
			backoff = 0
		}
		timer.Reset(wait)
	}
}

// kickFor asks for a pass when o is one of the guard's webhook
// configurations.
func (r *Rotator) kickFor(o any) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if obj, ok := o.(client.Object); ok {
		for _, name := range r.opts.WebhookConfigurations {
			if obj.GetName() == name {
				r.keeper.notify()
				return
			}
		}
	}
}

// longestWait bounds the time between passes: a look now and then costs a
// GET, and catches anything a watch missed.
const longestWait = 10 * time.Minute

// pass brings the Secret and the caBundles in line and returns how long
// until the next one is due.
func (r *Rotator) pass(ctx context.Context) (time.Duration, error) {
	now := r.opts.Now()
	secret := &corev1.Secret{}
	err := r.reader.Get(ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: r.opts.Secret}, secret)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("reading Secret %s/%s: %w", r.opts.Namespace, r.opts.Secret, err)
	}
	var stored Material
	if exists {
		var problems error
		if stored, problems = decode(secret); problems != nil {
			log.FromContext(ctx).Info("parts of the Secret are remade", "problems", problems.Error())
		}
	}
	p, err := r.opts.decide(now, stored, r.keeper.Serving())
	if err != nil {
		return 0, err
	}
	if len(p.changes) > 0 || !exists {
		if err := r.writeSecret(ctx, secret, exists, p.next, p.changes); err != nil {
			return 0, err
		}
		exists = true
	}
	trusted, err := r.publish(ctx, certs.EncodePEM(p.next.Bundle...))
	if err != nil {
		return 0, err
	}
	if trusted && p.next.Published.IsZero() {
		// Every webhook configuration trusts the CA: from now on, after
		// Propagation, serving certificates may come from it.
		p.next.Published = now.Truncate(time.Second)
		if err := r.writeSecret(ctx, secret, exists, p.next, []string{"published"}); err != nil {
			return 0, err
		}
		p.wakeBy(p.next.Published.Add(r.opts.Propagation))
	}
	wait := min(p.wake.Sub(now), longestWait)
	return max(wait, 0), nil
}

// writeSecret creates the Secret, or server-side applies its data and
// annotations, conditional on the version read (a stale pass fails and is
// retried, never overwrites).
func (r *Rotator) writeSecret(ctx context.Context, read *corev1.Secret, exists bool, m Material, changes []string) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "apiservice-guard", "app.kubernetes.io/name": "apiservice-guard"}
	if !exists {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.opts.Namespace, Name: r.opts.Secret, Labels: labels, Annotations: m.annotations()},
			Type:       corev1.SecretTypeTLS,
			Data:       m.data(),
		}
		if err := r.client.Create(ctx, s, client.FieldOwner(r.opts.FieldManager)); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", r.opts.Namespace, r.opts.Secret, err)
		}
		*read = *s
	} else {
		ac := corev1ac.Secret(r.opts.Secret, r.opts.Namespace).
			WithResourceVersion(read.ResourceVersion).
			WithLabels(labels).WithAnnotations(m.annotations()).WithData(m.data())
		if err := r.client.Apply(ctx, ac, client.FieldOwner(r.opts.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying Secret %s/%s: %w", r.opts.Namespace, r.opts.Secret, err)
		}
		// The next write of this pass builds on this one.
		if err := r.reader.Get(ctx, client.ObjectKeyFromObject(read), read); err != nil {
			return err
		}
	}
	for _, c := range changes {
		r.writes.WithLabelValues("secret", c).Inc()
	}
	log.FromContext(ctx).Info("certificate Secret written", "secret", r.opts.Namespace+"/"+r.opts.Secret, "changes", changes,
		"ca", certs.Describe(m.CA.Cert), "serving", certs.Fingerprint(m.Serving.Cert), "bundle", len(m.Bundle))
	return nil
}

// publish applies bundle as the caBundle of every webhook of the guard's
// configurations that does not hold it already, and reports whether all of
// them held it (no write needed). What the cache shows stale is read again
// from the API server before it is written: the cache may not show a
// write just made (ours, or one another writer made twice).
func (r *Rotator) publish(ctx context.Context, bundle []byte) (bool, error) {
	trusted := true
	for _, name := range r.opts.WebhookConfigurations {
		for _, k := range configKinds {
			hooks, stale, err := k.stale(ctx, r.cache, name, bundle)
			if err == nil && stale {
				hooks, stale, err = k.stale(ctx, r.reader, name, bundle)
			}
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return false, err
			}
			if !stale {
				continue
			}
			trusted = false
			if err := r.client.Apply(ctx, k.apply(name, hooks, bundle), client.FieldOwner(r.opts.FieldManager), client.ForceOwnership); err != nil {
				return false, fmt.Errorf("applying the caBundle of %s %s: %w", k.kind, name, err)
			}
			r.writes.WithLabelValues(k.kind, changeBundle).Inc()
			log.FromContext(ctx).Info("caBundle written", "kind", k.kind, "name", name, "webhooks", len(hooks))
		}
	}
	return trusted, nil
}

// stale reads the named configuration of kind k through c and returns its
// webhooks' names and whether any of them lacks bundle.
func (k configKind) stale(ctx context.Context, c client.Reader, name string, bundle []byte) ([]string, bool, error) {
	hooks, err := k.read(ctx, c, name)
	if err != nil {
		return nil, false, err
	}
	names := make([]string, len(hooks))
	stale := false
	for i, h := range hooks {
		names[i] = h.name
		stale = stale || !bytes.Equal(h.caBundle, bundle)
	}
	return names, stale, nil
}

// webhookCA is one webhook of a configuration and its caBundle.
type webhookCA struct {
	name     string
	caBundle []byte
}

// configKind reads and applies the caBundles of one kind of webhook
// configuration.
type configKind struct {
	kind  string
	read  func(ctx context.Context, c client.Reader, name string) ([]webhookCA, error)
	apply func(name string, hooks []string, bundle []byte) runtime.ApplyConfiguration
}

// configKinds are the kinds the guard's webhook configurations come in.
var configKinds = []configKind{
	{
		kind: "validatingwebhookconfiguration",
		read: func(ctx context.Context, c client.Reader, name string) ([]webhookCA, error) {
			v := &admissionregv1.ValidatingWebhookConfiguration{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, v); err != nil {
				return nil, err
			}
			out := make([]webhookCA, len(v.Webhooks))
			for i, w := range v.Webhooks {
				out[i] = webhookCA{w.Name, w.ClientConfig.CABundle}
			}
			return out, nil
		},
		apply: func(name string, hooks []string, bundle []byte) runtime.ApplyConfiguration {
			ac := admissionregv1ac.ValidatingWebhookConfiguration(name)
			for _, h := range hooks {
				ac.WithWebhooks(admissionregv1ac.ValidatingWebhook().WithName(h).
					WithClientConfig(admissionregv1ac.WebhookClientConfig().WithCABundle(bundle...)))
			}
			return ac
		},
	},
	{
		kind: "mutatingwebhookconfiguration",
		read: func(ctx context.Context, c client.Reader, name string) ([]webhookCA, error) {
			m := &admissionregv1.MutatingWebhookConfiguration{}
			if err := c.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
				return nil, err
			}
			out := make([]webhookCA, len(m.Webhooks))
			for i, w := range m.Webhooks {
				out[i] = webhookCA{w.Name, w.ClientConfig.CABundle}
			}
			return out, nil
		},
		apply: func(name string, hooks []string, bundle []byte) runtime.ApplyConfiguration {
			ac := admissionregv1ac.MutatingWebhookConfiguration(name)
			for _, h := range hooks {
				ac.WithWebhooks(admissionregv1ac.MutatingWebhook().WithName(h).
					WithClientConfig(admissionregv1ac.WebhookClientConfig().WithCABundle(bundle...)))
			}
			return ac
		},
	},
}
