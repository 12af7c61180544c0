package certs_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"apiservice-guard.io/apiservice-guard/certs"
)

// mergeSet is the certificates the MergeCA tests use, and the time they are
// merged at: "expired*" have expired by then, the others are valid.
type mergeSet struct {
	now                         time.Time
	oldCA, newCA, nextCA, other *x509.Certificate
	leaf                        *x509.Certificate
	expired, expiredCA          *x509.Certificate
}

func newMergeSet(t *testing.T) mergeSet {
	t.Helper()
	const year = 365 * 24 * time.Hour
	newCA := mustCA(t, "new-ca", year)
	short := mustCA(t, "expired-ca", time.Hour)
	return mergeSet{
		now:       time.Now().Add(48 * time.Hour),
		oldCA:     mustCA(t, "old-ca", year).Cert,
		newCA:     newCA.Cert,
		nextCA:    mustCA(t, "next-ca", year).Cert,
		other:     mustCA(t, "other-ca", year).Cert,
		leaf:      mustServing(t, newCA, year, svcName).Cert,
		expired:   mustServing(t, newCA, time.Hour, "expired.example").Cert,
		expiredCA: short.Cert,
	}
}

// pemOf is the canonical encoding of certificates, written here with
// pem.Encode rather than through certs.EncodePEM.
func pemOf(t *testing.T, list ...*x509.Certificate) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range list {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }

func TestMergeCA(t *testing.T) {
	s := newMergeSet(t)
	key := mustCA(t, "key-owner", time.Hour).KeyPEM()
	newPEM := pemOf(t, s.newCA)
	truncated := newPEM[:len(newPEM)/2]
	badBase64 := []byte("-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n")
	// A bundle that holds the CA, in a shape cainjector would not write.
	decorated := join([]byte("# trust bundle, managed by hand\n\n"), crlf(pemOf(t, s.expired)), []byte("\n\n   \n"),
		[]byte("subject=CN = new-ca\n"), newPEM, []byte("\n# end\n"))

	tests := []struct {
		name        string
		bundle      []byte
		ca          []*x509.Certificate
		want        []byte
		wantChanged bool
	}{
		{name: "nil bundle", bundle: nil, ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "empty bundle", bundle: []byte{}, ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "whitespace bundle", bundle: []byte("\n \r\n\t"), ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},

		// A bundle that holds every CA certificate is left byte for byte.
		{name: "holds the CA", bundle: newPEM, ca: []*x509.Certificate{s.newCA}, want: newPEM},
		{name: "holds the CA among text, odd whitespace and an expired certificate", bundle: decorated, ca: []*x509.Certificate{s.newCA}, want: decorated},
		{name: "holds the CA after an old CA", bundle: pemOf(t, s.oldCA, s.newCA), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.oldCA, s.newCA)},
		{name: "holds the CA twice", bundle: pemOf(t, s.newCA, s.oldCA, s.newCA), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.newCA, s.oldCA, s.newCA)},
		{name: "holds the CA in CRLF", bundle: crlf(newPEM), ca: []*x509.Certificate{s.newCA}, want: crlf(newPEM)},
		{name: "holds both certificates of the CA", bundle: pemOf(t, s.nextCA, s.other, s.newCA), ca: []*x509.Certificate{s.newCA, s.nextCA}, want: pemOf(t, s.nextCA, s.other, s.newCA)},
		{name: "holds the CA, which has expired", bundle: pemOf(t, s.expiredCA), ca: []*x509.Certificate{s.expiredCA}, want: pemOf(t, s.expiredCA)},

		// Otherwise: valid bundle certificates, deduplicated, then the CA's.
		{name: "old CA only", bundle: pemOf(t, s.oldCA), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.oldCA, s.newCA), wantChanged: true},
		{name: "old CA with text is re-encoded", bundle: join([]byte("# old\n"), crlf(pemOf(t, s.oldCA)), []byte("trailer\n")), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.oldCA, s.newCA), wantChanged: true},
		{name: "order of the bundle kept", bundle: pemOf(t, s.other, s.leaf, s.oldCA), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.other, s.leaf, s.oldCA, s.newCA), wantChanged: true},
		{name: "expired certificates dropped", bundle: pemOf(t, s.expired, s.oldCA, s.expiredCA), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.oldCA, s.newCA), wantChanged: true},
		{name: "only expired certificates", bundle: pemOf(t, s.expiredCA), ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "duplicates removed", bundle: pemOf(t, s.oldCA, s.other, s.oldCA, s.other), ca: []*x509.Certificate{s.newCA}, want: pemOf(t, s.oldCA, s.other, s.newCA), wantChanged: true},
		{name: "duplicate CA certificates added once", bundle: pemOf(t, s.oldCA), ca: []*x509.Certificate{s.newCA, s.newCA}, want: pemOf(t, s.oldCA, s.newCA), wantChanged: true},

		// A bundle that does not parse is replaced by the CA.
		{name: "not PEM", bundle: []byte("not a certificate"), ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "private key", bundle: key, ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "old CA then a private key", bundle: join(pemOf(t, s.oldCA), key), ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "truncated base64", bundle: truncated, ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "bad base64", bundle: badBase64, ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "CERTIFICATE block that is not a certificate", bundle: pemBlock("CERTIFICATE", []byte("junk")), ca: []*x509.Certificate{s.newCA}, want: newPEM, wantChanged: true},
		{name: "not PEM, CA of two", bundle: []byte("garbage"), ca: []*x509.Certificate{s.nextCA, s.newCA}, want: pemOf(t, s.nextCA, s.newCA), wantChanged: true},

		// A CA of two certificates, one already there.
		{name: "CA of two, first present", bundle: pemOf(t, s.oldCA, s.newCA), ca: []*x509.Certificate{s.newCA, s.nextCA}, want: pemOf(t, s.oldCA, s.newCA, s.nextCA), wantChanged: true},
		{name: "CA of two, second present", bundle: pemOf(t, s.nextCA), ca: []*x509.Certificate{s.newCA, s.nextCA}, want: pemOf(t, s.nextCA, s.newCA), wantChanged: true},

		// An expired CA certificate is not added, as cainjector does not.
		{name: "expired CA to an old CA", bundle: pemOf(t, s.oldCA), ca: []*x509.Certificate{s.expiredCA}, want: pemOf(t, s.oldCA)},
		{name: "expired CA to an old CA with text", bundle: join([]byte("# old\n"), pemOf(t, s.oldCA)), ca: []*x509.Certificate{s.expiredCA}, want: pemOf(t, s.oldCA), wantChanged: true},
		{name: "expired CA to an empty bundle", bundle: nil, ca: []*x509.Certificate{s.expiredCA}, want: nil},
		{name: "expired CA to garbage", bundle: []byte("garbage"), ca: []*x509.Certificate{s.expiredCA}, want: nil, wantChanged: true},
		{name: "CA of an expired and a valid certificate", bundle: pemOf(t, s.oldCA), ca: []*x509.Certificate{s.expiredCA, s.newCA}, want: pemOf(t, s.oldCA, s.newCA), wantChanged: true},
		{name: "CA of an expired and a valid certificate, the valid one present", bundle: pemOf(t, s.newCA), ca: []*x509.Certificate{s.expiredCA, s.newCA}, want: newPEM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.bundle)
			got, changed := certs.MergeCA(in, tc.ca, s.now)
			if diff := cmp.Diff(string(tc.want), string(got)); diff != "" {
				t.Errorf("MergeCA() bundle mismatch (-want +got):\n%s", diff)
			}
			if changed != tc.wantChanged {
				t.Errorf("MergeCA() changed = %v, want %v", changed, tc.wantChanged)
			}
			if !bytes.Equal(in, tc.bundle) {
				t.Errorf("MergeCA() modified its input bundle")
			}
			checkMerged(t, tc.bundle, tc.ca, s.now, got, changed)
		})
	}
}

// checkMerged checks the properties every MergeCA result has: changed says
// whether got differs from bundle; got parses and trusts every CA
// certificate valid at now; merging again changes nothing.
func checkMerged(t *testing.T, bundle []byte, ca []*x509.Certificate, now time.Time, got []byte, changed bool) {
	t.Helper()
	if changed == bytes.Equal(got, bundle) {
		t.Errorf("MergeCA() changed = %v, but the bundle is %s", changed, map[bool]string{true: "unchanged", false: "changed"}[bytes.Equal(got, bundle)])
	}
	var valid []*x509.Certificate
	for _, c := range ca {
		if !now.After(c.NotAfter) {
			valid = append(valid, c)
		}
	}
	if len(got) > 0 || len(valid) > 0 {
		parsed, err := certs.ParseBundle(got)
		if err != nil {
			t.Fatalf("ParseBundle(MergeCA()) error = %v\n%s", err, got)
		}
		for _, c := range valid {
			if !slices.ContainsFunc(parsed, func(p *x509.Certificate) bool { return p.Equal(c) }) {
				t.Errorf("MergeCA() result lacks CA certificate %s", certs.Describe(c))
			}
		}
	}
	again, changedAgain := certs.MergeCA(got, ca, now)
	if changedAgain || !bytes.Equal(again, got) {
		t.Errorf("MergeCA(MergeCA()) = changed %v, bytes equal %v; want no change", changedAgain, bytes.Equal(again, got))
	}
}

// cainjectorMerge is what cainjector (1.21+) writes when merging ca into
// bundle, written from its description rather than from MergeCA: the
// bundle's certificates still valid at now, without duplicates (by DER) and
// in their order, then those of ca not already there, each pem.Encode'd as a
// CERTIFICATE without headers. Only for well-formed bundles.
func cainjectorMerge(t *testing.T, bundle []byte, ca []*x509.Certificate, now time.Time) []byte {
	t.Helper()
	var existing []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("generated bundle does not parse: %v", err)
		}
		existing = append(existing, c)
	}
	var out bytes.Buffer
	written := map[string]bool{}
	for _, group := range [][]*x509.Certificate{existing, ca} {
		for _, c := range group {
			if written[string(c.Raw)] || c.NotAfter.Before(now) {
				continue
			}
			written[string(c.Raw)] = true
			if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out.Bytes()
}

// TestMergeCAWritesWhatCainjectorWrites checks MergeCA against
// cainjectorMerge on bundles and CAs drawn at random (with a fixed seed) from
// valid, expired and repeated certificates, with text around the blocks. A
// bundle that already holds the CA must come back as it is instead.
func TestMergeCAWritesWhatCainjectorWrites(t *testing.T) {
	s := newMergeSet(t)
	pool := []*x509.Certificate{s.oldCA, s.newCA, s.nextCA, s.other, s.leaf, s.expired, s.expiredCA}
	fillers := []string{"", "", "\n", "# comment\n", "\r\n\r\n", "subject=CN = x\nissuer=CN = y\n", "  \t\n"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) []*x509.Certificate {
		out := make([]*x509.Certificate, n)
		for i := range out {
			out[i] = pool[rng.IntN(len(pool))]
		}
		return out
	}
	var merged, kept int
	for i := range 2000 {
		inBundle := pick(rng.IntN(6))
		var b strings.Builder
		for _, c := range inBundle {
			b.WriteString(fillers[rng.IntN(len(fillers))])
			block := pemOf(t, c)
			if rng.IntN(8) == 0 {
				block = crlf(block)
			}
			b.Write(block)
		}
		b.WriteString(fillers[rng.IntN(len(fillers))])
		bundle := []byte(b.String())
		ca := pick(1 + rng.IntN(3))

		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, changed := certs.MergeCA(bundle, ca, s.now)
			want, wantChanged := cainjectorMerge(t, bundle, ca, s.now), true
			if holdsAll(inBundle, ca) {
				want, wantChanged = bundle, false
				kept++
			} else {
				wantChanged = !bytes.Equal(want, bundle)
				merged++
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("bundle %s, CA %s: MergeCA() mismatch (-want +got):\n%s", names(inBundle), names(ca), diff)
			}
			if changed != wantChanged {
				t.Errorf("bundle %s, CA %s: MergeCA() changed = %v, want %v", names(inBundle), names(ca), changed, wantChanged)
			}
			checkMerged(t, bundle, ca, s.now, got, changed)
		})
	}
	// The draw must exercise both branches.
	if merged < 100 || kept < 100 {
		t.Errorf("%d merged and %d kept cases: too few of one kind", merged, kept)
	}
}

// holdsAll reports whether every certificate of want is in have, by DER.
func holdsAll(have, want []*x509.Certificate) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h *x509.Certificate) bool { return bytes.Equal(h.Raw, w.Raw) }) {
			return false
		}
	}
	return true
}

// names lists the subject CNs of certificates, for messages.
func names(list []*x509.Certificate) string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.Subject.CommonName
	}
	return "[" + strings.Join(out, " ") + "]"
}

// TestMergeCAIdempotent merges each bundle twice, the second time into the
// first result.
func TestMergeCAIdempotent(t *testing.T) {
	s := newMergeSet(t)
	bundles := map[string][]byte{
		"empty":           nil,
		"garbage":         []byte("garbage"),
		"old CA":          pemOf(t, s.oldCA),
		"old CA and text": join([]byte("# x\n"), pemOf(t, s.oldCA, s.expired, s.oldCA)),
		"the CA":          pemOf(t, s.newCA),
	}
	cas := map[string][]*x509.Certificate{
		"new":          {s.newCA},
		"new and next": {s.newCA, s.nextCA},
		"expired":      {s.expiredCA},
		"expired, new": {s.expiredCA, s.newCA},
	}
	for bn, bundle := range bundles {
		for cn, ca := range cas {
			t.Run(bn+"/"+cn, func(t *testing.T) {
				once, _ := certs.MergeCA(bundle, ca, s.now)
				twice, changed := certs.MergeCA(once, ca, s.now)
				if changed {
					t.Errorf("MergeCA(MergeCA(b, ca), ca) changed = true, want false")
				}
				if diff := cmp.Diff(string(once), string(twice)); diff != "" {
					t.Errorf("MergeCA(MergeCA(b, ca), ca) mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}
