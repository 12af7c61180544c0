package policies

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
)

// Annotations that declare who fills in an empty caBundle.
const (
	// AnnotationInjectCAFrom is cert-manager's cainjector annotation naming a
	// Certificate ("<namespace>/<name>").
	AnnotationInjectCAFrom = "cert-manager.io/inject-ca-from"
	// AnnotationInjectCAFromSecret is cainjector's annotation naming a Secret.
	AnnotationInjectCAFromSecret = "cert-manager.io/inject-ca-from-secret"
	// AnnotationCAInjectedBy tells the guard that another tool writes the
	// caBundle (value: the tool's name), so an empty one is expected.
	AnnotationCAInjectedBy = "apiservice-guard.io/ca-injected-by"
	// labelPartOf with value "keda-operator" marks KEDA's APIService, whose
	// caBundle KEDA's own certificate rotation fills in.
	labelPartOf = "app.kubernetes.io/part-of"
)

// expiryWarning is how close to expiry a caBundle gets a warning.
const expiryWarning = 30 * 24 * time.Hour

func caBundleInvalidRule() Rule {
	return apiServiceRule("apiservice-cabundle-invalid", Enforce,
		"caBundle is not PEM, holds no certificate, is expired, or is missing while insecureSkipTLSVerify is false (expiring within 30 days: warning)",
		func(_ context.Context, f *backendFacts) []Result {
			if f.api.Spec.InsecureSkipTLSVerify {
				return nil
			}
			if len(f.api.Spec.CABundle) == 0 {
				return emptyBundleResults(f)
			}
			bundle, err := f.review.certs.ParseBundle(f.api.Spec.CABundle)
			if err != nil {
				return []Result{{
					Message: fmt.Sprintf("caBundle is invalid: %v", err),
					Fix:     "set caBundle to the PEM of the CA that issued the adapter's serving certificate",
				}}
			}
			return expiryResults(f, bundle)
		})
}

// emptyBundleResults reports a missing caBundle: a violation, unless an
// injector is declared to fill it in, in which case only a note.
func emptyBundleResults(f *backendFacts) []Result {
	msg := fmt.Sprintf("caBundle is empty and insecureSkipTLSVerify is false: discovery of %s will fail", f.svcName())
	if who := caInjector(f); who != "" {
		return []Result{{Message: msg + " until " + who + " injects the CA", Advisory: true}}
	}
	return []Result{{
		Message: msg,
		Fix:     "set caBundle, or annotate " + AnnotationInjectCAFrom + ": <namespace>/<Certificate>",
	}}
}

// caInjector names the tool declared to write this APIService's caBundle.
func caInjector(f *backendFacts) string {
	a := f.api.Annotations
	switch {
	case a[AnnotationInjectCAFrom] != "":
		return "cert-manager (from Certificate " + a[AnnotationInjectCAFrom] + ")"
	case a[AnnotationInjectCAFromSecret] != "":
		return "cert-manager (from Secret " + a[AnnotationInjectCAFromSecret] + ")"
	case a[AnnotationCAInjectedBy] != "":
		return a[AnnotationCAInjectedBy]
	case f.api.Labels[labelPartOf] == "keda-operator":
		return "KEDA's certificate rotation"
	}
	return ""
}

// expiryResults denies a bundle in which no certificate is valid now, and warns
// when the longest-lived valid one expires within expiryWarning. Expired extra
// certificates next to a valid one are harmless (cainjector keeps old CAs for
// rotation overlap) and are not reported.
func expiryResults(f *backendFacts, bundle []*x509.Certificate) []Result {
	now := f.review.now()
	var best time.Duration
	var bestCert *x509.Certificate
	var firstErr error
	for _, c := range bundle {
		left, err := certs.Expiry(c, now)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if left > best {
			best, bestCert = left, c
		}
	}
	switch {
	case best == 0:
		return []Result{{
			Message: fmt.Sprintf("caBundle has no valid certificate: %v", firstErr),
			Fix:     "put the adapter's current CA certificate in spec.caBundle",
		}}
	case best < expiryWarning:
		return []Result{{
			Message:  fmt.Sprintf("caBundle expires in %s: its longest-lived certificate is %s", humanDuration(best), certs.Describe(bestCert)),
			Fix:      "rotate the adapter's CA and update spec.caBundle",
			Advisory: true,
			Ahead:    true,
		}}
	}
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func insecureSkipTLSRule() Rule {
	return apiServiceRule("apiservice-insecure-skip-tls", Warn,
		"insecureSkipTLSVerify is true: the aggregator does not verify the adapter",
		func(_ context.Context, f *backendFacts) []Result {
			if !f.api.Spec.InsecureSkipTLSVerify {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("insecureSkipTLSVerify is true: the API server does not verify %s", f.svcName()),
				Fix:     "set caBundle, or annotate " + AnnotationInjectCAFrom + ": <namespace>/<Certificate>",
			}}
		})
}

func caBundleMismatchRule() Rule {
	return apiServiceRule("apiservice-cabundle-mismatch", Enforce,
		"caBundle does not verify the backend's serving certificate (denied when the APIService is Available now, else warned)",
		func(ctx context.Context, f *backendFacts) []Result {
			if f.api.Spec.InsecureSkipTLSVerify || len(f.api.Spec.CABundle) == 0 {
				return nil
			}
			bundle, err := f.review.certs.ParseBundle(f.api.Spec.CABundle)
			if err != nil {
				return nil // apiservice-cabundle-invalid reports it
			}
			sc := servingCertFor(ctx, f)
			if sc.err != nil {
				return nil // cannot verify: nothing to say
			}
			// The name is checked by apiservice-serving-cert-san; here only
			// whether the chain leads to a root in the bundle.
			err = f.review.certs.VerifyServing(bundle, sc.chain, "", f.review.now())
			if err == nil {
				return nil
			}
			leaf := sc.chain[0]
			if _, expErr := certs.Expiry(leaf, f.review.now()); expErr != nil {
				// Not a caBundle problem: the adapter serves a dead certificate.
				return []Result{{
					Message:  fmt.Sprintf("serving certificate of %s (%s) is not valid now: discovery will fail", f.svcName(), sc.source),
					Fix:      "renew the adapter's serving certificate",
					Advisory: !f.available(),
				}}
			}
			// CAs are named with fingerprints: a stale and a fresh CA often
			// share a name.
			issuer := certs.DescribeIssuer(leaf, slices.Concat(sc.chain[1:], sc.caCerts)...)
			return []Result{{
				Message: fmt.Sprintf("caBundle does not verify the serving certificate of %s, issued by %s: the caBundle holds %s (%s; %s)",
					f.svcName(), issuer, describeCerts(bundle), sc.source, shortX509(err)),
				Fix:      "set caBundle to " + issuer + sc.caHint(),
				Advisory: !f.available(),
			}}
		})
}

func servingCertSANRule() Rule {
	return apiServiceRule("apiservice-serving-cert-san", Warn,
		"the backend's serving certificate lacks the DNS name <service>.<namespace>.svc",
		func(ctx context.Context, f *backendFacts) []Result {
			if f.api.Spec.InsecureSkipTLSVerify {
				return nil
			}
			sc := servingCertFor(ctx, f)
			if sc.err != nil || certs.HasDNSName(sc.chain[0], f.dnsName) {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("serving certificate of %s (%s) lacks DNS name %s; it has %v",
					f.svcName(), sc.source, f.dnsName, sc.chain[0].DNSNames),
				Fix: "reissue the serving certificate with " + f.dnsName + " in its dnsNames",
			}}
		})
}

// describeCerts names the first certificate of a bundle, and counts the rest.
func describeCerts(bundle []*x509.Certificate) string {
	s := certs.Describe(bundle[0])
	if n := len(bundle) - 1; n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return s
}

// shortX509 strips the wrapping Go adds around x509 verification errors.
func shortX509(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "x509: certificate signed by unknown authority"
	}
	return err.Error()
}

// humanDuration renders a time left as days, or hours under two days.
func humanDuration(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
