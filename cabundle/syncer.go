package cabundle

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	apiregv1ac "k8s.io/kube-aggregator/pkg/client/applyconfiguration/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/internal/shorten"
)

// ControllerName names the Syncer's controller in logs and metrics.
const ControllerName = "cabundle"

// Event reasons the Syncer records. Each cause has its own reason: client-go
// folds Events with the same object, reason and action into one series and
// keeps only the first note.
const (
	// ReasonUpdated: caBundle was applied from the source.
	ReasonUpdated = "CABundleUpdated"
	// ReasonSourceInvalid: an annotation is not <namespace>/<name>.
	ReasonSourceInvalid = "CABundleSourceInvalid"
	// ReasonSourceUnavailable: the source is missing, not allowed, or holds
	// no valid CA.
	ReasonSourceUnavailable = "CABundleSourceUnavailable"
	// ReasonNotApplicable: the APIService cannot take a caBundle
	// (insecureSkipTLSVerify is true, or it is served locally).
	ReasonNotApplicable = "CABundleNotApplicable"
	// ReasonApplyFailed: the API server refused the apply.
	ReasonApplyFailed = "CABundleApplyFailed"
)

// eventAction is the action of every Event the Syncer records.
const eventAction = "SyncCABundle"

// Syncer reconciles APIServices that declare a cert-manager CA source: it
// merges the source's current CA into spec.caBundle (certs.MergeCA) and
// applies the result when it differs, owning only spec.caBundle.
type Syncer struct {
	client client.Client
	source certs.CAReader
	opts   Options
}

var _ reconcile.Reconciler = (*Syncer)(nil)

// New returns a Syncer that reads and applies APIServices through c (in a
// manager, its client: APIServices come from the cache) and reads sources
// through o.Reader.
func New(c client.Client, o Options) (*Syncer, error) {
	if c == nil {
		return nil, errors.New("cabundle: a client is required")
	}
	if o.Reader == nil {
		return nil, errors.New("cabundle: Options.Reader is required (an uncached reader, e.g. the manager's APIReader)")
	}
	o = o.withDefaults()
	return &Syncer{client: c, source: sourceReader{r: o.Reader}, opts: o}, nil
}

// SetupWithManager registers s with mgr as the controller ControllerName,
// watching only APIServices for which DeclaresSource holds.
func (s *Syncer) SetupWithManager(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&apiregv1.APIService{}, builder.WithPredicates(predicate.NewPredicateFuncs(DeclaresSource))).
		Complete(s)
}

// DeclaresSource reports whether obj carries cert-manager.io/inject-ca-from
// or cert-manager.io/inject-ca-from-secret, well-formed or not.
func DeclaresSource(obj client.Object) bool {
	_, declared, _ := certs.CASourceOf(obj.GetAnnotations())
	return declared
}

// Reconcile implements reconcile.Reconciler. An APIService without a source
// is left alone and not requeued; one with a source is always requeued after
// Interval, since a rotated Secret is noticed only by reading it again.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	api := &apiregv1.APIService{}
	if err := s.client.Get(ctx, req.NamespacedName, api); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	src, declared, err := certs.CASourceOf(api.Annotations)
	if !declared {
		return reconcile.Result{}, nil
	}
	s.sync(ctx, api, src, err)
	return reconcile.Result{RequeueAfter: s.opts.Interval}, nil
}

// sync brings api's caBundle in line with src. Every failure is logged and
// recorded, never returned: the caller requeues after Interval either way,
// which is also the only retry a failure needs (no hot loop).
func (s *Syncer) sync(ctx context.Context, api *apiregv1.APIService, src certs.CASource, srcErr error) {
	logger := log.FromContext(ctx)
	if srcErr != nil {
		s.notSynced(ctx, api, ReasonSourceInvalid, "caBundle source annotation is malformed", srcErr, "annotation", src.Annotation)
		return
	}
	now := s.opts.Now()
	ca, err := certs.ReadCA(ctx, s.source, src)
	if err == nil {
		err = validCA(ca, now)
	}
	if err != nil {
		s.notSynced(ctx, api, ReasonSourceUnavailable, "caBundle source holds no usable CA", err, "source", src.String())
		return
	}
	bundle, changed := certs.MergeCA(api.Spec.CABundle, ca.Certs, now)
	if !changed {
		logger.V(1).Info("caBundle already trusts its source's CA", "source", src.String())
		return
	}
	if err := applicable(api); err != nil {
		s.notSynced(ctx, api, ReasonNotApplicable, "caBundle not applied", err, "source", src.String())
		return
	}
	if err := s.apply(ctx, api, bundle); err != nil {
		if apierrors.IsConflict(err) {
			// The cached APIService is older than the stored one; the watch
			// event for the newer one brings it back here.
			logger.V(1).Info("caBundle apply raced a newer write; will retry", "source", src.String())
			return
		}
		s.notSynced(ctx, api, ReasonApplyFailed, "applying caBundle failed", err, "source", src.String())
		return
	}
	logger.Info("caBundle updated from its source", "source", src.String(), "secret", ca.Secret, "fieldManager", s.opts.FieldManager)
	s.event(api, corev1.EventTypeNormal, ReasonUpdated, "caBundle updated from ca.crt of Secret "+ca.Secret+" ("+src.String()+")")
}

// apply server-side applies bundle as api's spec.caBundle and nothing else.
// The resourceVersion read makes it conditional: a bundle merged from a stale
// copy never overwrites a newer one (cainjector's, say).
func (s *Syncer) apply(ctx context.Context, api *apiregv1.APIService, bundle []byte) error {
	ac := apiregv1ac.APIService(api.Name).
		WithResourceVersion(api.ResourceVersion).
		WithSpec(apiregv1ac.APIServiceSpec().WithCABundle(bundle...))
	return s.client.Apply(ctx, ac, client.FieldOwner(s.opts.FieldManager), client.ForceOwnership)
}

// applicable explains why the API server would refuse a caBundle on api.
func applicable(api *apiregv1.APIService) error {
	switch {
	case api.Spec.Service == nil:
		return errors.New("the APIService is served locally (no spec.service), which may not have a caBundle")
	case api.Spec.InsecureSkipTLSVerify:
		return errors.New("spec.insecureSkipTLSVerify is true, which the API server refuses together with a caBundle; set it to false")
	}
	return nil
}

// validCA fails when no certificate of ca is valid at now: merging it would
// add nothing the aggregator could use.
func validCA(ca *certs.CA, now time.Time) error {
	for _, c := range ca.Certs {
		if !now.Before(c.NotBefore) && !now.After(c.NotAfter) {
			return nil
		}
	}
	return fmt.Errorf("%w: no certificate in %s of Secret %s is valid now", certs.ErrNoCA, certs.CAKey, ca.Secret)
}

// notSynced logs why api was not updated and records a Warning Event.
func (s *Syncer) notSynced(ctx context.Context, api *apiregv1.APIService, reason, msg string, err error, keysAndValues ...any) {
	log.FromContext(ctx).Info(msg, append(keysAndValues, "reason", reason, "error", err.Error())...)
	s.event(api, corev1.EventTypeWarning, reason, msg+": "+err.Error())
}

// event records an Event on api when a Recorder is set.
func (s *Syncer) event(api *apiregv1.APIService, eventType, reason, note string) {
	if s.opts.Recorder == nil {
		return
	}
	const maxNote = 1024 // the API server's limit on an Event note
	s.opts.Recorder.Eventf(api, nil, eventType, reason, eventAction, "%s", shorten.Printable(note, maxNote))
}
