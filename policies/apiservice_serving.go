package policies

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"apiservice-guard.io/apiservice-guard/certs"
)

// servingCert is the backend's serving certificate as the guard found it.
type servingCert struct {
	chain  []*x509.Certificate // leaf first
	source string              // where it came from, for messages
	// caSecret is the Secret ("<namespace>/<name>") whose ca.crt was read
	// into caCerts, which may hold the CA that issued the leaf.
	caSecret string
	caCerts  []*x509.Certificate
	err      error
}

// caHint says where the CA that issued the leaf is found, for fixes: the
// Secret's ca.crt when it holds that CA, else nothing.
func (sc servingCert) caHint() string {
	if sc.caSecret == "" || certs.Issuer(sc.chain[0], sc.caCerts...) == nil {
		return ""
	}
	return " (ca.crt of Secret " + sc.caSecret + ")"
}

var errNoServingCert = errors.New("no source for the serving certificate")

type servingKey struct{}

// servingCertFor finds the backend's serving certificate, from the first of:
// the Secret of the cert-manager Certificate named by inject-ca-from; a
// tls.crt Secret mounted by a backend pod; a TLS probe of one ready endpoint
// (or of the external name) with server name <service>.<namespace>.svc.
func servingCertFor(ctx context.Context, f *backendFacts) servingCert {
	return memoize(f.review, servingKey{}, func() servingCert {
		for _, source := range []func(context.Context, *backendFacts) servingCert{
			fromCertificate, fromMountedSecret, fromProbe,
		} {
			if sc := source(ctx, f); sc.err == nil {
				return sc
			}
		}
		return servingCert{err: errNoServingCert}
	})
}

// fromCertificate reads the Secret of the Certificate named by inject-ca-from.
func fromCertificate(ctx context.Context, f *backendFacts) servingCert {
	ns, name, ok := SplitNamespacedName(f.api.Annotations[AnnotationInjectCAFrom])
	if !ok {
		return servingCert{err: errNoServingCert}
	}
	crt, err := f.view.Certificate(ctx, ns, name)
	if err != nil {
		return servingCert{err: err}
	}
	sc := fromSecret(ctx, f, ns, crt.Spec.SecretName)
	sc.source += " of Certificate " + ns + "/" + name
	return sc
}

// fromMountedSecret reads the first Secret with a tls.crt mounted by a backend pod.
func fromMountedSecret(ctx context.Context, f *backendFacts) servingCert {
	seen := map[string]bool{}
	for _, pod := range f.pods {
		for _, name := range mountedSecrets(pod) {
			if seen[name] {
				continue
			}
			seen[name] = true
			if sc := fromSecret(ctx, f, pod.Namespace, name); sc.err == nil {
				sc.source += " mounted by pod " + pod.Name
				return sc
			}
		}
	}
	return servingCert{err: errNoServingCert}
}

// fromSecret parses a Secret's tls.crt, and its ca.crt for the fix.
func fromSecret(ctx context.Context, f *backendFacts, ns, name string) servingCert {
	if name == "" {
		return servingCert{err: errNoServingCert}
	}
	s, err := f.view.Secret(ctx, ns, name)
	if err != nil {
		return servingCert{err: err}
	}
	chain, err := f.review.certs.ParseBundle(s.Data[corev1.TLSCertKey])
	if err != nil {
		return servingCert{err: err}
	}
	sc := servingCert{chain: chain, source: "Secret " + ns + "/" + name}
	if caCerts, err := f.review.certs.ParseBundle(s.Data["ca.crt"]); err == nil {
		sc.caSecret, sc.caCerts = ns+"/"+name, caCerts
	}
	return sc
}

// mountedSecrets lists the Secret names a pod mounts as volumes.
func mountedSecrets(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			names = append(names, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					names = append(names, src.Secret.Name)
				}
			}
		}
	}
	return names
}

// fromProbe asks the view for the certificate the backend presents.
func fromProbe(ctx context.Context, f *backendFacts) servingCert {
	addr := probeAddress(f)
	if addr == "" {
		return servingCert{err: errNoServingCert}
	}
	chain, err := f.view.ServingCertificate(ctx, addr, f.dnsName)
	if err != nil {
		return servingCert{err: err}
	}
	if len(chain) == 0 {
		return servingCert{err: errNoServingCert}
	}
	return servingCert{chain: chain, source: "presented at " + addr}
}

// probeAddress is where the aggregator would connect: the external name on the
// APIService port, or a ready endpoint on the Service port's endpoint port.
func probeAddress(f *backendFacts) string {
	if f.externalName() {
		return net.JoinHostPort(f.svc.Spec.ExternalName, strconv.Itoa(int(f.port)))
	}
	if f.svcPort == nil {
		return ""
	}
	if addr, port, ok := readyEndpoint(f); ok && addr != "" {
		return net.JoinHostPort(addr, strconv.Itoa(int(port)))
	}
	return ""
}

// SplitNamespacedName splits "<namespace>/<name>"; ok is false unless both
// parts are non-empty and there is exactly one slash.
func SplitNamespacedName(s string) (namespace, name string, ok bool) {
	ns, n, found := strings.Cut(s, "/")
	if !found || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", false
	}
	return ns, n, true
}
