package install

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"apiservice-guard.io/apiservice-guard/certs"
	"apiservice-guard.io/apiservice-guard/servingcert"
	"apiservice-guard.io/apiservice-guard/test/harness"
)

// trustsSecret reports whether every webhook's caBundle is the Secret's.
func trustsSecret(t testing.TB) bool {
	t.Helper()
	ok, err := suite.in.TrustsSecret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// register applies the webhook configurations of manifests/base
// (failurePolicy Fail) and waits until every webhook trusts the Secret's CA
// and a NetworkPolicy passes them (Installation.Register, Serving).
func register(t testing.TB) {
	t.Helper()
	if err := suite.in.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := suite.in.Serving(t.Context(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// networkPolicyPasses creates and deletes a NetworkPolicy, which the API
// server sends to the guard (failurePolicy Fail): it reports the error.
func networkPolicyPasses(t testing.TB) error { return suite.in.NetworkPolicyPasses(t.Context()) }

// TestSelfManaged installs the guard without cert-manager: one replica
// with its own certificates, the webhook configurations of manifests/base
// with failurePolicy Fail, reached through the guard's ClusterIP Service.
func TestSelfManaged(t *testing.T) {
	fresh(t)
	g := startGuard(t)
	t.Cleanup(func() { _ = g.Stop() })
	if err := suite.cp.Network.Balance(suite.service, g.Addr); err != nil {
		t.Fatal(err)
	}
	register(t)

	t.Run("first install", func(t *testing.T) {
		s, bundle := secret(t)
		if s.Type != corev1.SecretTypeTLS || s.Labels["app.kubernetes.io/managed-by"] != "apiservice-guard" || len(bundle) != 1 {
			t.Fatalf("Secret type %s, labels %v, %d CAs", s.Type, s.Labels, len(bundle))
		}
		if _, ok := s.Annotations[servingcert.AnnotationPublished]; !ok {
			t.Error("the CA is not marked published")
		}
		leaf := g.presented(t)
		if err := certs.VerifyServing(bundle, []*x509.Certificate{leaf}, "apiservice-guard-webhook.apiservice-guard-system.svc", time.Now()); err != nil {
			t.Errorf("the presented certificate: %v", err)
		}
		if g.writes(t, "validatingwebhookconfiguration") != 1 || g.writes(t, "mutatingwebhookconfiguration") != 1 {
			t.Errorf("caBundle writes: %d validating, %d mutating; want 1 each",
				g.writes(t, "validatingwebhookconfiguration"), g.writes(t, "mutatingwebhookconfiguration"))
		}
	})

	t.Run("other writers", func(t *testing.T) { testOtherWriters(t, g) })
	t.Run("rotations under load", func(t *testing.T) { testRotationsUnderLoad(t, g) })
	t.Run("Secret deleted under load", func(t *testing.T) { testSecretDeleted(t, g) })

	if logs := g.Logs(); strings.Contains(strings.ToLower(logs), "conflict") {
		t.Errorf("the guard met a conflict:\n%s", logs)
	}
}

// testOtherWriters: a GitOps tool re-applies the webhook configurations in
// the ways they are re-applied; where that leaves caBundle alone, the guard
// writes nothing; where it empties it, the guard restores it within 10 s,
// once, and neither writer sees an error.
func testOtherWriters(t *testing.T, g *guard) {
	placeholder := func(block string) string { return block + "      caBundle: \"\"\n" }
	for _, tt := range []struct {
		name     string
		manifest string
		args     []string
		emptied  bool
	}{
		{"server-side apply without caBundle", webhookManifest(t, nil),
			[]string{"apply", "--server-side", "--field-manager=argocd-controller", "-f", "-"}, false},
		{"client-side apply without caBundle", webhookManifest(t, nil),
			[]string{"apply", "-f", "-"}, false},
		{"server-side apply with an empty caBundle, forced", webhookManifest(t, placeholder),
			[]string{"apply", "--server-side", "--field-manager=argocd-controller", "--force-conflicts", "-f", "-"}, true},
		{"client-side apply with an empty caBundle", webhookManifest(t, placeholder),
			[]string{"apply", "-f", "-"}, true},
		{"replace without caBundle", webhookManifest(t, nil),
			[]string{"replace", "-f", "-"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			count := func() int {
				return g.writes(t, "validatingwebhookconfiguration") + g.writes(t, "mutatingwebhookconfiguration")
			}
			before := count()
			kubectl(t, tt.manifest, tt.args...) // fails the test on an error
			start := time.Now()
			eventually(t, 10*time.Second, "caBundle restored", func() bool { return trustsSecret(t) })
			t.Logf("caBundle trusted again after %s", time.Since(start).Round(time.Millisecond))
			settled := count()
			time.Sleep(3 * time.Second) // a loop would show as more writes
			if got := count(); got != settled {
				t.Errorf("caBundle writes went on: %d, then %d 3 s later", settled, got)
			}
			// One write per configuration emptied; kubectl's server-side
			// apply migrating client-side apply's fields may empty one
			// twice (two requests), and each is answered once.
			switch got := settled - before; {
			case !tt.emptied && got != 0:
				t.Errorf("%d caBundle writes where nothing was emptied; the guard's log:\n%s", got, g.Logs())
			case tt.emptied && (got < 2 || got > 4):
				t.Errorf("%d caBundle writes for two configurations emptied, want 2 (up to 4); the guard's log:\n%s", got, g.Logs())
			}
			if err := networkPolicyPasses(t); err != nil {
				t.Errorf("a NetworkPolicy through the webhook: %v", err)
			}
		})
	}
}

// testRotationsUnderLoad: forced rotations of the serving certificate and
// of the CA, while writes pass the webhook with failurePolicy Fail: no
// write fails, the new CA is trusted before it issues anything, and the
// old one stays in the caBundle.
func testRotationsUnderLoad(t *testing.T, g *guard) {
	_, before := secret(t)
	firstLeaf := g.presented(t)
	l := startLoad(t, 4)
	time.Sleep(time.Second)

	kubectl(t, "", "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret, servingcert.AnnotationRotate+"=serving-1", "--overwrite")
	eventually(t, 10*time.Second, "a new serving certificate is served", func() bool { return !sameCert(g.presented(t), firstLeaf) })
	if leaf := g.presented(t); leaf.CheckSignatureFrom(before[0]) != nil {
		t.Error("the rotated serving certificate is not from the same CA")
	}
	time.Sleep(time.Second)

	kubectl(t, "", "annotate", "secret", "-n", harness.GuardNamespace, servingcert.DefaultSecret, servingcert.AnnotationRotate+"=ca-2", "--overwrite")
	var newCA *x509.Certificate
	eventually(t, 10*time.Second, "a new CA in the Secret", func() bool {
		_, b := secret(t)
		if len(b) == 2 && !sameCert(b[0], before[0]) {
			newCA = b[0]
			return true
		}
		return false
	})
	eventually(t, 15*time.Second, "a serving certificate from the new CA is served", func() bool {
		return g.presented(t).CheckSignatureFrom(newCA) == nil
	})
	time.Sleep(2 * time.Second)
	writes, failed := l.finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed during the rotations; first: %s", len(failed), writes+int64(len(failed)), failed[0])
	}
	t.Logf("%d writes through the webhooks, none failed", writes)
	if writes < 20 {
		t.Errorf("only %d writes under load", writes)
	}
	_, after := secret(t)
	if len(after) != 2 || !sameCert(after[1], before[0]) {
		t.Errorf("after the CA rotation the bundle holds %d CAs, want the new one then the old one", len(after))
	}
	if !trustsSecret(t) {
		t.Error("the webhooks do not trust the Secret's bundle")
	}
}

// testSecretDeleted: the Secret deleted under load is recreated with a new
// CA, the replicas keep serving the pair they hold until a certificate of
// the new CA is trusted, and no write fails.
func testSecretDeleted(t *testing.T, g *guard) {
	s, before := secret(t)
	l := startLoad(t, 4)
	time.Sleep(time.Second)
	if err := suite.cp.Client.Delete(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	var recreated []*x509.Certificate
	eventually(t, 10*time.Second, "the Secret is recreated with a new CA", func() bool {
		got := &corev1.Secret{}
		if err := suite.cp.Client.Get(t.Context(), client.ObjectKeyFromObject(s), got); err != nil {
			return false
		}
		_, recreated = secret(t)
		return !sameCert(recreated[0], before[0])
	})
	eventually(t, 15*time.Second, "a serving certificate from the new CA is served", func() bool {
		return g.presented(t).CheckSignatureFrom(recreated[0]) == nil
	})
	time.Sleep(2 * time.Second)
	writes, failed := l.finish()
	if len(failed) > 0 {
		t.Errorf("%d of %d writes failed after the Secret was deleted; first: %s", len(failed), writes+int64(len(failed)), failed[0])
	}
	t.Logf("%d writes through the webhooks, none failed", writes)
	_, after := secret(t)
	if !containsAll(after, before[:1]) {
		t.Error("the CA the replicas served before the deletion left the bundle")
	}
}

func sameCert(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) }

func containsAll(have, want []*x509.Certificate) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || sameCert(h, w)
		}
		if !found {
			return false
		}
	}
	return true
}
