package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestLoadStaticObjects(t *testing.T) {
	s := loadFixtures(t)
	keda := filepath.Join("testdata", "static", "keda.yaml")
	list := filepath.Join("testdata", "static", "list.json")
	rbac := filepath.Join("testdata", "static", "nested", "deeper", "rbac.yml")
	// Directory order is lexical. Every "---" starts the next document
	// number: the leading comment is #1, and the comment-only #3 and the
	// empty #4 are skipped but counted.
	want := []string{
		"Namespace " + keda + "#2",
		"Service " + keda + "#5",
		"Deployment " + keda + "#6",
		"APIService " + keda + "#7",
		"ServiceMonitor " + keda + "#8",
		"NetworkPolicy " + list + "#1[0]",
		"ServiceAccount " + list + "#1[1]",
		"ClusterRoleBinding " + rbac + "#1",
		"RoleBinding " + rbac + "#2",
	}
	var got []string
	for _, l := range s.Objects() {
		got = append(got, l.GVK.Kind+" "+l.Source)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestLoadStaticUnknownKindIsUnstructured(t *testing.T) {
	s := loadFixtures(t)
	for _, l := range s.Objects() {
		if l.GVK.Kind != "ServiceMonitor" {
			continue
		}
		u, ok := l.Object.(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("ServiceMonitor decoded as %T, want *unstructured.Unstructured", l.Object)
		}
		want := schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}
		if diff := cmp.Diff(want, u.GroupVersionKind()); diff != "" {
			t.Errorf("GVK (-want +got):\n%s", diff)
		}
		if u.GetName() != "keda-metrics" || u.GetNamespace() != "keda" {
			t.Errorf("got %s/%s, want keda/keda-metrics", u.GetNamespace(), u.GetName())
		}
		return
	}
	t.Fatal("ServiceMonitor not loaded")
}

func TestLoadStaticErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		want []string // substrings of the error
	}{
		{name: "invalid YAML names file and document", path: "bad-yaml.yaml", want: []string{"bad-yaml.yaml#2", "invalid YAML"}},
		{name: "missing kind", path: "no-kind.yaml", want: []string{"no-kind.yaml#1", "apiVersion and kind are required"}},
		{name: "missing apiVersion", path: "no-apiversion.yaml", want: []string{"no-apiversion.yaml#1", "apiVersion and kind are required"}},
		{name: "wrong field type", path: "bad-field.yaml", want: []string{"bad-field.yaml#1", "decoding Service"}},
		{name: "missing file", path: "does-not-exist.yaml", want: []string{"does-not-exist.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadStatic(filepath.Join("testdata", "invalid", tt.path))
			if err == nil {
				t.Fatal("LoadStatic succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadStaticEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	writeFile(t, path, "# nothing but comments\n---\n\n---\n")
	s, err := LoadStatic(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Objects()); n != 0 {
		t.Errorf("loaded %d objects, want 0", n)
	}
}

// configMap is a ConfigMap document named name.
func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: ns\n"
}

func TestLoadStaticDocumentNumbering(t *testing.T) {
	a, b := configMap("a"), configMap("b")
	tests := []struct {
		name    string
		content string
		want    []string // "name #document"
		wantErr []string // substrings of the error
	}{
		{name: "empty document counts", content: a + "---\n---\nkind: [\n", wantErr: []string{"m.yaml#3: invalid YAML"}},
		{name: "empty and comment-only documents count", content: "---\n" + a + "---\n# nothing\n---\n---\n" + b, want: []string{"a #1", "b #4"}},
		{name: "leading separator opens document 1", content: "---\n" + a + "---\n" + b, want: []string{"a #1", "b #2"}},
		{name: "leading blank lines and separator open document 1", content: "\n\n---\n" + a, want: []string{"a #1"}},
		{name: "leading comment is document 1", content: "# header\n---\n" + a, want: []string{"a #2"}},
		{name: "separator with a comment", content: a + "--- # next\n" + b, want: []string{"a #1", "b #2"}},
		{name: "CRLF line endings", content: strings.ReplaceAll(a+"---\n\n---\n"+b, "\n", "\r\n"), want: []string{"a #1", "b #3"}},
		{name: "trailing separator", content: a + "---\n", want: []string{"a #1"}},
		{name: "list items keep their document", content: "---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: ns}}\n", want: []string{"a #2[0]"}},
		{name: "content after a separator", content: a + "--- {}\n" + b, wantErr: []string{"m.yaml#2", "invalid YAML document separator"}},
		{name: "document over the limit", content: a + "---\n" + strings.Repeat("# filler\n", maxDocumentBytes/9+1), wantErr: []string{"m.yaml#2", "byte limit"}},
		{name: "line over the limit", content: a + "---\n\n---\n# " + strings.Repeat("x", maxDocumentBytes), wantErr: []string{"m.yaml#3", "byte limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.yaml")
			writeFile(t, path, tt.content)
			s, err := LoadStatic(path)
			if !matchErr(t, err, tt.wantErr) {
				return
			}
			var got []string
			for _, l := range s.Objects() {
				m, _ := metaOf(l.Object)
				got = append(got, m.GetName()+" "+strings.TrimPrefix(l.Source, path))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// matchErr checks err against the wanted substrings (none: no error) and
// reports whether the load succeeded.
func matchErr(t *testing.T, err error, want []string) bool {
	t.Helper()
	switch {
	case err != nil && len(want) == 0:
		t.Fatalf("LoadStatic: %v", err)
	case err == nil && len(want) > 0:
		t.Fatalf("LoadStatic succeeded, want an error containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	return err == nil
}

// treeTest loads paths (relative to a directory holding files) and lists
// the objects as "Kind name source", source relative to the directory.
type treeTest struct {
	name      string
	files     map[string]string // slash path -> content
	paths     []string          // slash paths; "." is the directory
	want      []string
	wantErr   []string // substrings of the error, paths relative
	wantNotes []string // Notes(), paths relative
	wantDocs  int      // len(Documents()), when not zero
}

func (tt treeTest) run(t *testing.T) {
	dir := t.TempDir()
	for p, content := range tt.files {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, content)
	}
	var paths []string
	for _, p := range tt.paths {
		paths = append(paths, filepath.Join(dir, filepath.FromSlash(p)))
	}
	s, err := LoadStatic(paths...)
	if err != nil {
		err = errors.New(strings.ReplaceAll(filepath.ToSlash(err.Error()), filepath.ToSlash(dir)+"/", ""))
	}
	if !matchErr(t, err, tt.wantErr) {
		return
	}
	var got []string
	for _, l := range s.Objects() {
		m, _ := metaOf(l.Object)
		rel, _ := filepath.Rel(dir, l.Source)
		got = append(got, l.GVK.Kind+" "+m.GetName()+" "+filepath.ToSlash(rel))
	}
	if diff := cmp.Diff(tt.want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	var notes []string
	for _, n := range s.Notes() {
		notes = append(notes, strings.ReplaceAll(filepath.ToSlash(n), filepath.ToSlash(dir)+"/", ""))
	}
	if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if tt.wantDocs != 0 && len(s.Documents()) != tt.wantDocs {
		t.Errorf("%d documents, want %d", len(s.Documents()), tt.wantDocs)
	}
}

func TestLoadStaticWalk(t *testing.T) {
	const (
		workflow      = "name: ci\non: push\njobs: {}\n" // not a Kubernetes object
		kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n"
	)
	tests := []treeTest{{
		name: "hidden directories and files are skipped",
		files: map[string]string{
			"a.yaml": configMap("a"), ".github/workflows/ci.yaml": workflow, ".git/x.yaml": workflow,
			"sub/.hidden.yaml": workflow, "sub/b.yml": configMap("b"),
		},
		paths: []string{"."},
		want:  []string{"ConfigMap a a.yaml#1", "ConfigMap b sub/b.yml#1"},
	}, {
		name: "kustomize files are skipped",
		files: map[string]string{
			"base/a.yaml": configMap("a"), "base/kustomization.yaml": kustomization,
			"overlay/kustomization.yml": "resources: [../base]\n", "other/Kustomization": "resources: []\n",
		},
		paths: []string{"."},
		want:  []string{"ConfigMap a base/a.yaml#1"},
	}, {
		name:  "an explicit hidden directory is walked",
		files: map[string]string{".config/a.yaml": configMap("a"), ".config/.b.yaml": workflow},
		paths: []string{".config"},
		want:  []string{"ConfigMap a .config/a.yaml#1"},
	}, {
		name:  "explicit files are read whatever their name",
		files: map[string]string{".a.yaml": configMap("a"), "kustomization.yaml": kustomization},
		paths: []string{".a.yaml", "kustomization.yaml"},
		want:  []string{"ConfigMap a .a.yaml#1", "Kustomization  kustomization.yaml#1"},
	}, {
		name:  "a file reached twice is read once",
		files: map[string]string{"a.yaml": configMap("a"), "sub/b.yaml": configMap("b")},
		paths: []string{"sub/b.yaml", ".", "a.yaml"},
		want:  []string{"ConfigMap b sub/b.yaml#1", "ConfigMap a a.yaml#1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestLoadStaticDuplicates(t *testing.T) {
	svc := func(apiVersion, ns string) string {
		return "apiVersion: " + apiVersion + "\nkind: Service\nmetadata: {name: web, namespace: " + ns + "}\n"
	}
	const apiService = "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\n"
	tests := []treeTest{{
		name:      "same object in two files",
		files:     map[string]string{"a.yaml": svc("v1", "shop"), "b.yaml": configMap("x") + "---\n" + svc("v1", "shop")},
		paths:     []string{"."},
		want:      []string{"Service web b.yaml#2", "ConfigMap x b.yaml#1"},
		wantNotes: []string{"Service shop/web is defined twice, in a.yaml#1 and b.yaml#2; the cluster view holds the later one"},
		wantDocs:  3,
	}, {
		name:      "same object in one file",
		files:     map[string]string{"a.yaml": svc("v1", "shop") + "---\n" + svc("v1", "shop")},
		paths:     []string{"a.yaml"},
		want:      []string{"Service web a.yaml#2"},
		wantNotes: []string{"Service shop/web is defined twice, in a.yaml#1 and a.yaml#2; the cluster view holds the later one"},
		wantDocs:  2,
	}, {
		name:      "same object in a List",
		files:     map[string]string{"l.yaml": "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(svc("v1", "shop"), "\n", "\n  ") + "\n- " + strings.ReplaceAll(svc("v1", "shop"), "\n", "\n  ")},
		paths:     []string{"l.yaml"},
		want:      []string{"Service web l.yaml#1[1]"},
		wantNotes: []string{"Service shop/web is defined twice, in l.yaml#1[0] and l.yaml#1[1]; the cluster view holds the later one"},
	}, {
		name:      "cluster-scoped object of a named group",
		files:     map[string]string{"a.yaml": apiService, "b/c.yaml": apiService},
		paths:     []string{"a.yaml", "b"},
		want:      []string{"APIService v1beta1.metrics.k8s.io b/c.yaml#1"},
		wantNotes: []string{"APIService.apiregistration.k8s.io v1beta1.metrics.k8s.io is defined twice, in a.yaml#1 and b/c.yaml#1; the cluster view holds the later one"},
	}, {
		name: "same name in another namespace, kind or group is no duplicate",
		files: map[string]string{"a.yaml": svc("v1", "shop") + "---\n" + svc("v1", "other") + "---\n" +
			svc("serving.knative.dev/v1", "shop") + "---\n" + strings.Replace(svc("v1", "shop"), "Service", "ServiceAccount", 1)},
		paths: []string{"a.yaml"},
		want:  []string{"Service web a.yaml#1", "Service web a.yaml#2", "Service web a.yaml#3", "ServiceAccount web a.yaml#4"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
