package servingcert

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

const (
	day  = 24 * time.Hour
	year = 365 * day
)

func testOptions(t *testing.T) Options {
	t.Helper()
	o, err := Options{Namespace: "guard-system", Service: "guard-webhook"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// mustDecide is decide, failing the test on an error, with the invariants
// every plan keeps checked: the CA leads the bundle, the serving
// certificate is trusted by the bundle for our names, and nothing expired
// is kept.
func mustDecide(t *testing.T, o Options, now time.Time, stored, served Material) plan {
	t.Helper()
	p, err := o.decide(now, stored, served)
	if err != nil {
		t.Fatal(err)
	}
	if !sameCert(p.next.Bundle[0], p.next.CA.Cert) {
		t.Fatal("the bundle does not start with the CA")
	}
	if !o.trusted(p.next.Serving, p.next.Bundle, now) {
		t.Fatal("the serving certificate is not trusted by the bundle")
	}
	for _, c := range p.next.Bundle {
		if !now.Before(c.NotAfter) {
			t.Fatalf("an expired CA is kept: %s", certs.Describe(c))
		}
	}
	if p.next.Serving.Cert.NotAfter.After(p.next.CA.Cert.NotAfter) && issuedBy(p.next.Serving.Cert, p.next.CA.Cert, now) {
		t.Fatal("the serving certificate outlives its CA")
	}
	if !p.wake.After(now) {
		t.Fatalf("wake %s is not after now %s", p.wake, now)
	}
	return p
}

func changes(p plan) []string { return slices.Sorted(slices.Values(p.changes)) }

// TestDecideLifecycle walks the material through its life at the default
// lifetimes: made from nothing, left alone, the serving certificate renewed
// at 2/3, the CA renewed at 2/3 and published before any serving
// certificate comes from it, the old CA kept until it expires.
func TestDecideLifecycle(t *testing.T) {
	o := testOptions(t)
	p := mustDecide(t, o, t0, Material{}, Material{})
	if diff := cmp.Diff([]string{changeCA, changeServing}, changes(p)); diff != "" {
		t.Fatalf("from nothing (-want +got):\n%s", diff)
	}
	if len(p.next.Bundle) != 1 || !p.next.Published.IsZero() || !issuedBy(p.next.Serving.Cert, p.next.CA.Cert, t0) {
		t.Fatalf("from nothing: bundle of %d, published %s", len(p.next.Bundle), p.next.Published)
	}
	if got := p.next.Serving.Cert.DNSNames; !slices.Equal(got, []string{"guard-webhook.guard-system.svc", "guard-webhook.guard-system.svc.cluster.local"}) {
		t.Errorf("serving certificate names %q", got)
	}
	first := p.next
	first.Published = t0.Add(time.Second)

	// Unchanged in mid-life; the wake is the serving renewal at 2/3.
	now := t0.Add(100 * day)
	p = mustDecide(t, o, now, first, first)
	if len(p.changes) != 0 || !p.next.same(first) {
		t.Fatalf("mid-life: changes %v", p.changes)
	}
	if want := renewAt(first.Serving.Cert); !p.wake.Equal(want) {
		t.Errorf("mid-life wake %s, want the serving renewal %s", p.wake, want)
	}

	// At 2/3 of its year the serving certificate is renewed from the same CA.
	now = renewAt(first.Serving.Cert)
	p = mustDecide(t, o, now, first, first)
	if diff := cmp.Diff([]string{changeServing}, changes(p)); diff != "" {
		t.Fatalf("serving renewal (-want +got):\n%s", diff)
	}
	if !sameCert(p.next.CA.Cert, first.CA.Cert) || !issuedBy(p.next.Serving.Cert, first.CA.Cert, now) || !p.next.Published.Equal(first.Published) {
		t.Fatal("serving renewal changed the CA or its publication")
	}

	// At 2/3 of the CA's life: a new CA, unpublished, in front of the old
	// one; the serving certificate stays with the old CA.
	second := p.next
	now = renewAt(first.CA.Cert)
	second.Serving, _ = first.CA.IssueServingValid(o.DNSNames(), nil, now.Add(-day), now.Add(200*day))
	p = mustDecide(t, o, now, second, second)
	if diff := cmp.Diff([]string{changeCA}, changes(p)); diff != "" {
		t.Fatalf("CA renewal (-want +got):\n%s", diff)
	}
	rotated := p.next
	if sameCert(rotated.CA.Cert, first.CA.Cert) || !rotated.Published.IsZero() || len(rotated.Bundle) != 2 || !sameCert(rotated.Bundle[1], first.CA.Cert) {
		t.Fatalf("CA renewal: bundle of %d, published %s", len(rotated.Bundle), rotated.Published)
	}
	if !sameCert(rotated.Serving.Cert, second.Serving.Cert) {
		t.Fatal("a serving certificate was issued from an unpublished CA")
	}

	// Published, but not for Propagation yet: still the old serving
	// certificate, and a wake at the end of Propagation.
	rotated.Published = now.Add(time.Minute)
	p = mustDecide(t, o, rotated.Published.Add(o.Propagation/2), rotated, rotated)
	if len(p.changes) != 0 {
		t.Fatalf("during propagation: changes %v", p.changes)
	}
	if want := rotated.Published.Add(o.Propagation); !p.wake.Equal(want) {
		t.Errorf("during propagation: wake %s, want %s", p.wake, want)
	}
	// Then the serving certificate comes from the new CA; the old CA stays.
	now = rotated.Published.Add(o.Propagation)
	p = mustDecide(t, o, now, rotated, rotated)
	if diff := cmp.Diff([]string{changeServing}, changes(p)); diff != "" {
		t.Fatalf("after propagation (-want +got):\n%s", diff)
	}
	if !issuedBy(p.next.Serving.Cert, rotated.CA.Cert, now) || len(p.next.Bundle) != 2 {
		t.Fatalf("after propagation: serving not from the new CA, or bundle of %d", len(p.next.Bundle))
	}

	// The old CA leaves the bundle when it expires, not before (the
	// serving certificate, renewed meanwhile, is renewed here too).
	settled := p.next
	p = mustDecide(t, o, first.CA.Cert.NotAfter.Add(-time.Second), settled, settled)
	if len(p.next.Bundle) != 2 || p.has(changeBundle) {
		t.Fatalf("before the old CA expires: bundle of %d, changes %v", len(p.next.Bundle), p.changes)
	}
	p = mustDecide(t, o, first.CA.Cert.NotAfter, settled, settled)
	if len(p.next.Bundle) != 1 || !p.has(changeBundle) {
		t.Fatalf("once the old CA expired: bundle of %d, changes %v", len(p.next.Bundle), p.changes)
	}
}

// TestDecideRecovers: what is missing or unusable is made again, and what
// this replica serves carries over a deleted Secret.
func TestDecideRecovers(t *testing.T) {
	o := testOptions(t)
	base := mustDecide(t, o, t0, Material{}, Material{}).next
	base.Published = t0
	now := t0.Add(day)

	t.Run("Secret deleted: a new CA, the served pair and its CA kept", func(t *testing.T) {
		p := mustDecide(t, o, now, Material{}, base)
		if sameCert(p.next.CA.Cert, base.CA.Cert) || !sameCert(p.next.Serving.Cert, base.Serving.Cert) {
			t.Fatal("want a new CA and the served pair")
		}
		if len(p.next.Bundle) != 2 || !sameCert(p.next.Bundle[1], base.CA.Cert) || !p.next.Published.IsZero() {
			t.Fatalf("bundle of %d, published %s: want the new CA, then the served one, unpublished", len(p.next.Bundle), p.next.Published)
		}
	})
	t.Run("serving certificate for another name: reissued at once", func(t *testing.T) {
		m := base
		m.Serving, _ = base.CA.IssueServingValid([]string{"other.guard-system.svc"}, nil, t0, t0.Add(year))
		p := mustDecide(t, o, now, m, m)
		if !slices.Equal(p.changes, []string{changeServing}) {
			t.Fatalf("changes %v", p.changes)
		}
	})
	t.Run("serving certificate expired: reissued at once", func(t *testing.T) {
		m := base
		m.Serving, _ = base.CA.IssueServingValid(o.DNSNames(), nil, t0, t0.Add(time.Hour))
		p := mustDecide(t, o, now, m, m)
		if !slices.Equal(p.changes, []string{changeServing}) {
			t.Fatalf("changes %v", p.changes)
		}
	})
	t.Run("CA key lost: a new CA, the trusted pair kept until it is published", func(t *testing.T) {
		m := base
		m.CA = nil
		p := mustDecide(t, o, now, m, m)
		if !slices.Equal(p.changes, []string{changeCA}) || !sameCert(p.next.Serving.Cert, base.Serving.Cert) {
			t.Fatalf("changes %v", p.changes)
		}
	})
	t.Run("short CA: the serving certificate does not outlive it", func(t *testing.T) {
		short := o
		short.CALifetime, short.ServingLifetime = 30*day, year
		p := mustDecide(t, short, now, Material{}, Material{})
		if !p.next.Serving.Cert.NotAfter.Equal(p.next.CA.Cert.NotAfter) {
			t.Fatalf("serving until %s, CA until %s", p.next.Serving.Cert.NotAfter, p.next.CA.Cert.NotAfter)
		}
	})
	t.Run("many rotations: the bundle keeps the newest", func(t *testing.T) {
		m := base
		var cas []*x509.Certificate
		for i := range 2 * maxBundle {
			ca, _ := certs.NewCAValid("old", t0.Add(time.Duration(i)*time.Hour), t0.Add(year))
			cas = append(cas, ca.Cert)
		}
		m.Bundle = append([]*x509.Certificate{base.CA.Cert}, cas...)
		p := mustDecide(t, o, now, m, m)
		if len(p.next.Bundle) != maxBundle || !sameCert(p.next.Bundle[1], cas[len(cas)-1]) {
			t.Fatalf("bundle of %d, want %d, the newest first", len(p.next.Bundle), maxBundle)
		}
	})
}

// TestDecideRotateOnRequest: an admin's rotate annotation renews the
// serving certificate or the CA once per distinct value; a CA renewed on
// request is published before serving certificates come from it, like any.
func TestDecideRotateOnRequest(t *testing.T) {
	o := testOptions(t)
	base := mustDecide(t, o, t0, Material{}, Material{}).next
	base.Published = t0
	now := t0.Add(day)

	m := base
	m.Rotate = "serving-1"
	p := mustDecide(t, o, now, m, m)
	if diff := cmp.Diff([]string{changeRotated, changeServing}, changes(p)); diff != "" {
		t.Fatalf("rotate serving (-want +got):\n%s", diff)
	}
	if p.next.Rotated != "serving-1" || !sameCert(p.next.CA.Cert, base.CA.Cert) || sameCert(p.next.Serving.Cert, base.Serving.Cert) {
		t.Fatal("rotate serving: want a new serving certificate from the same CA, the request marked done")
	}
	done := p.next
	if p = mustDecide(t, o, now.Add(time.Minute), done, done); len(p.changes) != 0 {
		t.Fatalf("the same request again: changes %v", p.changes)
	}

	m = done
	m.Rotate = "ca-2"
	p = mustDecide(t, o, now, m, m)
	if diff := cmp.Diff([]string{changeCA, changeRotated}, changes(p)); diff != "" {
		t.Fatalf("rotate CA (-want +got):\n%s", diff)
	}
	if sameCert(p.next.CA.Cert, base.CA.Cert) || !p.next.Published.IsZero() || !sameCert(p.next.Serving.Cert, done.Serving.Cert) || len(p.next.Bundle) != 2 {
		t.Fatal("rotate CA: want a new, unpublished CA in front of the old one, and the serving certificate kept")
	}
}
