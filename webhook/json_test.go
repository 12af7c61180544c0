package webhook

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	sigsjson "sigs.k8s.io/json"

	"apiservice-guard.io/apiservice-guard/cluster"
)

// objectFixtures are every object of a kind the guard decodes found in the
// repository's YAML (examples, test data, manifests) and the objects as an
// API server writes them (managedFields, status, timestamps, nulls) in
// testdata/apiserver-objects.json, as JSON.
func objectFixtures(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	data, err := os.ReadFile("testdata/apiserver-objects.json")
	if err != nil {
		t.Fatal(err)
	}
	var written []json.RawMessage
	if err := json.Unmarshal(data, &written); err != nil {
		t.Fatal(err)
	}
	for _, o := range written {
		out = append(out, o)
	}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var doc json.RawMessage
			if err := docs.Decode(&doc); err != nil {
				break // the end, or a file that is not Kubernetes YAML
			}
			if len(doc) > 0 && doc[0] == '{' {
				out = append(out, doc)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kindOf is the group, version and kind an object's JSON says it is.
func kindOf(data []byte) (schema.GroupVersionKind, bool) {
	var tm struct{ APIVersion, Kind string }
	if err := json.Unmarshal(data, &tm); err != nil {
		return schema.GroupVersionKind{}, false
	}
	return schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind), true
}

// sameDecoding decodes data into a fresh new() with sigs.k8s.io/json (what
// decoded reviews before) and with decodeObject, and fails unless both
// fail or both give the same Go value.
func sameDecoding(t *testing.T, data []byte, newObj func() any) {
	t.Helper()
	want, got := newObj(), newObj()
	wantErr := sigsjson.UnmarshalCaseSensitivePreserveInts(data, want)
	gotErr := decodeObject(data, got)
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Fatalf("sigs.k8s.io/json: %v; decodeObject: %v; for %s", wantErr, gotErr, data)
	case wantErr == nil && !reflect.DeepEqual(want, got):
		t.Fatalf("decoded differently:\nsigs.k8s.io/json: %#v\ndecodeObject:     %#v\nfrom %s", want, got, data)
	}
}

// Every fixture object of a kind in the guard's scheme decodes to the same
// Go value as sigs.k8s.io/json decoded it.
func TestObjectDecodingMatchesSigsJSON(t *testing.T) {
	scheme := cluster.NewScheme()
	kinds := map[string]int{}
	for _, data := range objectFixtures(t) {
		gvk, ok := kindOf(data)
		if !ok || !scheme.Recognizes(gvk) {
			continue
		}
		kinds[gvk.Kind]++
		sameDecoding(t, data, func() any { o, _ := scheme.New(gvk); return o })
	}
	// The fixtures cover what the guard reviews.
	for _, k := range []string{"APIService", "NetworkPolicy", "ConfigMap", "ClusterConfig", "CiliumNetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the fixtures; decoded: %v", k, kinds)
		}
	}
	t.Logf("objects decoded alike: %v", kinds)
}

// FuzzObjectDecoding holds decodeObject to sigs.k8s.io/json on arbitrary
// JSON for each reviewed kind, and the strict envelope decoding to
// sigs.k8s.io/json's strict decoding: the same acceptance, the same value,
// except that the envelope also refuses a repeated name inside an object.
func FuzzObjectDecoding(f *testing.F) {
	scheme := cluster.NewScheme()
	for _, data := range objectFixtures(f) {
		if gvk, ok := kindOf(data); ok && scheme.Recognizes(gvk) {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"a":1},"Name":"x"}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a\xff","labels":{"a":"1","a":"2"}},"data":null}`))
	// Every typed kind but lists, in a fixed order: an input picks one by
	// its length, the same in every run.
	var kinds []schema.GroupVersionKind
	for gvk := range scheme.AllKnownTypes() {
		if !strings.HasSuffix(gvk.Kind, "List") && gvk.Version != runtime.APIVersionInternal {
			kinds = append(kinds, gvk)
		}
	}
	slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int { return strings.Compare(a.String(), b.String()) })
	f.Fuzz(func(t *testing.T, data []byte) {
		// As an object of the kind it names, or else of each kind it
		// could be sent as.
		if gvk, ok := kindOf(data); ok && scheme.Recognizes(gvk) {
			sameDecoding(t, data, func() any { o, _ := scheme.New(gvk); return o })
		}
		other := kinds[len(data)%len(kinds)]
		sameDecoding(t, data, func() any { o, _ := scheme.New(other); return o })
		// As an AdmissionReview, strictly.
		var want, got admissionv1.AdmissionReview
		strictErrs, wantErr := sigsjson.UnmarshalStrict(data, &want)
		if wantErr == nil && len(strictErrs) > 0 {
			wantErr = strictErrs[0]
		}
		gotErr := decodeEnvelopeJSON(data, &got)
		if wantErr == nil && gotErr != nil && strings.HasPrefix(gotErr.Error(), "invalid AdmissionReview: duplicate field") {
			return // stricter on purpose: a repeated name inside an object (envelopeJSON)
		}
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("strict: sigs.k8s.io/json: %v; envelope: %v; for %s", wantErr, gotErr, data)
		}
		if wantErr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("envelope decoded differently:\n%#v\n%#v", want, got)
		}
	})
}

// BenchmarkDecodeReview decodes an APIService UPDATE review as the API
// server sends it (both objects with managedFields and status), envelope
// and objects, with decodeEnvelopeJSON and decodeObject against
// sigs.k8s.io/json, which decoded reviews before: the ratio in one run.
func BenchmarkDecodeReview(b *testing.B) {
	var api json.RawMessage
	for _, data := range objectFixtures(b) {
		if gvk, ok := kindOf(data); ok && gvk.Kind == "APIService" && bytes.Contains(data, []byte("managedFields")) {
			api = data
			break
		}
	}
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b2",` +
		`"kind":{"group":"apiregistration.k8s.io","version":"v1","kind":"APIService"},` +
		`"resource":{"group":"apiregistration.k8s.io","version":"v1","resource":"apiservices"},` +
		`"name":"v1beta1.external.metrics.k8s.io","operation":"UPDATE",` +
		`"userInfo":{"username":"system:admin","groups":["system:masters","system:authenticated"]},` +
		`"object":` + string(api) + `,"oldObject":` + string(api) + `,"dryRun":false,` +
		`"options":{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply"}}}`)
	decoders := []struct {
		name     string
		envelope func([]byte, *admissionv1.AdmissionReview) error
		object   func([]byte, any) error
	}{
		{"json-v2", decodeEnvelopeJSON, decodeObject},
		{"sigs.k8s.io-json", func(data []byte, ar *admissionv1.AdmissionReview) error {
			_, err := sigsjson.UnmarshalStrict(data, ar)
			return err
		}, sigsjson.UnmarshalCaseSensitivePreserveInts},
	}
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ar admissionv1.AdmissionReview
				if err := d.envelope(body, &ar); err != nil {
					b.Fatal(err)
				}
				var obj, old apiregv1.APIService
				if err := d.object(ar.Request.Object.Raw, &obj); err != nil {
					b.Fatal(err)
				}
				if err := d.object(ar.Request.OldObject.Raw, &old); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
