package servingcert

import (
	"crypto/x509"
	"strings"
	"time"

	"apiservice-guard.io/apiservice-guard/certs"
)

// Changes a plan can make, as the metric and the log name them.
const (
	changeCA      = "ca"
	changeServing = "serving"
	changeBundle  = "bundle"
	changeRotated = "rotated"
)

// plan is the Rotator's decision for one pass.
type plan struct {
	next Material
	// changes says what changed from the stored material (changeCA,
	// changeServing, changeBundle); empty when nothing did.
	changes []string
	// wake is when the material next needs a look, at the latest.
	wake time.Time
}

// renewAt is 2/3 into cert's validity.
func renewAt(cert *x509.Certificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
}

// decide plans the material at now from what the Secret holds (stored) and
// what this replica serves (served: after the Secret was deleted, its CAs
// and pair carry on). It is a pure function of its inputs, the keys it
// generates aside.
//
//   - The CA is kept while it is valid and not 2/3 through its life, else
//     a new one is made; a new CA is unpublished.
//   - The caBundle is the CA, then every other CA stored or served that has
//     not expired, newest first, at most maxBundle.
//   - The serving certificate (the stored one, else the served one) is
//     kept while it is valid for our names and trusted by the caBundle.
//     It is replaced when it is not, from the CA at once; when the CA did
//     not issue it, once the CA has been published for Propagation; and at
//     2/3 of its life.
//   - An admin's rotation request not acted on yet counts as the CA, or
//     the serving certificate, being due.
func (o Options) decide(now time.Time, stored, served Material) (plan, error) {
	p := plan{next: Material{CA: stored.CA, Published: stored.Published, Rotate: stored.Rotate, Rotated: stored.Rotated}}
	var rotateCA, rotateServing bool
	if stored.Rotate != "" && stored.Rotate != stored.Rotated {
		rotateCA = strings.HasPrefix(stored.Rotate, "ca")
		rotateServing = strings.HasPrefix(stored.Rotate, "serving")
		p.next.Rotated = stored.Rotate
		p.changes = append(p.changes, changeRotated)
	}
	if p.next.CA == nil || !usableCA(p.next.CA.Cert, now) || rotateCA {
		ca, err := certs.NewCAValid("apiservice-guard-ca@"+now.UTC().Format(time.RFC3339), now.Add(-time.Minute), now.Add(o.CALifetime))
		if err != nil {
			return plan{}, err
		}
		p.next.CA, p.next.Published = ca, time.Time{}
		p.changes = append(p.changes, changeCA)
	}
	p.next.Bundle = bundle(now, p.next.CA.Cert, stored.Bundle, served.Bundle)
	if !sameCerts(p.next.Bundle, stored.Bundle) && !p.has(changeCA) {
		p.changes = append(p.changes, changeBundle)
	}

	names := o.DNSNames()
	candidate := stored.Serving
	if !o.trusted(candidate, p.next.Bundle, now) {
		candidate = served.Serving
	}
	issue := false
	switch {
	case !o.trusted(candidate, p.next.Bundle, now):
		issue = true
	case !issuedBy(candidate.Cert, p.next.CA.Cert, now):
		ready := p.next.Published.Add(o.Propagation)
		issue = !p.next.Published.IsZero() && !now.Before(ready)
		if !issue && !p.next.Published.IsZero() {
			p.wakeBy(ready)
		}
	default:
		issue = rotateServing || !now.Before(renewAt(candidate.Cert))
	}
	if issue {
		notAfter := now.Add(o.ServingLifetime)
		if ca := p.next.CA.Cert.NotAfter; notAfter.After(ca) {
			notAfter = ca
		}
		serving, err := p.next.CA.IssueServingValid(names, nil, now.Add(-time.Minute), notAfter)
		if err != nil {
			return plan{}, err
		}
		candidate = serving
	}
	p.next.Serving = candidate
	if stored.Serving == nil || !sameCert(stored.Serving.Cert, candidate.Cert) {
		p.changes = append(p.changes, changeServing)
	}

	p.wakeBy(renewAt(p.next.CA.Cert))
	if issuedBy(p.next.Serving.Cert, p.next.CA.Cert, now) {
		p.wakeBy(renewAt(p.next.Serving.Cert))
	}
	for _, c := range p.next.Bundle[1:] {
		p.wakeBy(c.NotAfter) // dropped from the caBundle once expired
	}
	p.wakeBy(p.next.Serving.Cert.NotAfter)
	return p, nil
}

func (p *plan) has(change string) bool {
	for _, c := range p.changes {
		if c == change {
			return true
		}
	}
	return false
}

// wakeBy moves the wake time to t when t is earlier.
func (p *plan) wakeBy(t time.Time) {
	if p.wake.IsZero() || t.Before(p.wake) {
		p.wake = t
	}
}

// usableCA reports whether a CA is valid at now and not yet due for renewal.
func usableCA(ca *x509.Certificate, now time.Time) bool {
	return ca.IsCA && !now.Before(ca.NotBefore) && now.Before(renewAt(ca))
}

// trusted reports whether the serving pair is valid at now for our names
// and verifies against the bundle, as the API server will check it.
func (o Options) trusted(serving *certs.KeyPair, bundle []*x509.Certificate, now time.Time) bool {
	if serving == nil || serving.Key == nil {
		return false
	}
	for _, name := range o.DNSNames() {
		if certs.VerifyServing(bundle, []*x509.Certificate{serving.Cert}, name, now) != nil {
			return false
		}
	}
	return true
}

// issuedBy reports whether ca signed cert (at now).
func issuedBy(cert, ca *x509.Certificate, now time.Time) bool {
	return certs.VerifyServing([]*x509.Certificate{ca}, []*x509.Certificate{cert}, "", now) == nil
}

// bundle is the CA, then the other CAs of the lists not expired at now,
// without repeats, newest first, at most maxBundle in all.
func bundle(now time.Time, ca *x509.Certificate, lists ...[]*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{ca}
	var others []*x509.Certificate
	for _, l := range lists {
		for _, c := range l {
			if c.IsCA && now.Before(c.NotAfter) && !containsCert(out, c) && !containsCert(others, c) {
				others = append(others, c)
			}
		}
	}
	// Newest first: a stable order, whatever order the lists came in.
	sortNewestFirst(others)
	out = append(out, others...)
	if len(out) > maxBundle {
		out = out[:maxBundle]
	}
	return out
}
