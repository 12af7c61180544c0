// Package cabundle keeps the spec.caBundle of APIServices in step with the
// cert-manager source their annotations name
// (cert-manager.io/inject-ca-from or cert-manager.io/inject-ca-from-secret),
// so that a CA rotated by cert-manager reaches the aggregator.
//
// The Syncer is a controller-runtime reconciler. It reconciles only
// APIServices that carry one of the two annotations, reads the source through
// an uncached reader by name (the guard never lists or watches Secrets), and
// re-reads every such APIService's source each Interval, which is how a
// rotated Secret is noticed. It writes with server-side apply, owning only
// spec.caBundle, and writes the bundle cert-manager's cainjector would write
// (see certs.MergeCA), so the two never fight over the field.
package cabundle
