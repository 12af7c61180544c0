package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"apiservice-guard.io/apiservice-guard/k0s"
)

// maxDocumentBytes bounds one YAML document, like the API server's request
// size limit (3 MiB per object).
const maxDocumentBytes = 3 << 20

// documentSeparator starts a new YAML document when it begins a line.
const documentSeparator = "---"

// kustomizationFiles are the names kustomize reads as its configuration: they
// are not Kubernetes objects.
var kustomizationFiles = map[string]bool{
	"kustomization.yaml": true,
	"kustomization.yml":  true,
	"Kustomization":      true,
}

// LoadStatic reads YAML or JSON manifests from files and directories,
// multi-document, with v1 List kinds expanded. Any unreadable file or
// undecodable document is an error naming it as "file#N".
//
// A path given is always read, whatever its name: a file as it is, a
// directory (even a hidden one) walked recursively for *.yaml, *.yml and
// *.json files in lexical order. While walking, LoadStatic skips:
//   - hidden files and directories (names starting with "."), such as .git
//     and .github, which hold repository tooling rather than manifests;
//   - kustomize configuration (kustomization.yaml, kustomization.yml,
//     Kustomization), which is not a Kubernetes object: LoadStatic reads the
//     files as they are and does not build kustomizations.
//
// A file reached through several paths is read once.
//
// Documents are numbered from 1 in file order, and every "---" separator line
// starts the next number, so an empty or comment-only document still counts
// (#3 is the third document a reader counts). A separator preceded only by
// blank lines opens document 1, as at the top of `helm template` output.
//
// The same object (group, kind, namespace and name) loaded twice is not an
// error: the cluster view holds the later one, as `kubectl apply -f` would
// leave it (a broken.yaml and a fixed.yaml side by side are common), Documents
// lists both for review, and Notes names both sources.
func LoadStatic(paths ...string) (*Static, error) {
	return LoadStaticInNamespace("", paths...)
}

// LoadStaticInNamespace is LoadStatic, with namespaced objects that name no
// namespace put in namespace, as kubectl apply would put them in the
// context's namespace (`helm template` output often names none). An empty
// namespace leaves them without one.
func LoadStaticInNamespace(namespace string, paths ...string) (*Static, error) {
	s := newStatic()
	s.defaultNamespace = namespace
	dec := serializer.NewCodecFactory(NewScheme()).UniversalDeserializer()
	seen := map[string]bool{}
	for _, p := range paths {
		files, err := manifestFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if abs, err := filepath.Abs(f); err == nil {
				if seen[abs] {
					continue
				}
				seen[abs] = true
			}
			if err := s.loadFile(dec, f); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// manifestFiles expands a path into the manifest files under it, sorted. A
// path that is not a directory is returned as is.
func manifestFiles(path string) ([]string, error) {
	files, _, err := walkManifests(path)
	return files, err
}

// Kustomizations returns the kustomize configuration files (kustomization.yaml,
// kustomization.yml, Kustomization) that LoadStatic skips while walking path,
// in lexical order, hidden directories excepted as in LoadStatic. The
// directory holding one is a kustomization: what it builds can differ from
// its files as LoadStatic reads them. A path that is not a directory has none.
func Kustomizations(path string) ([]string, error) {
	_, kustomizations, err := walkManifests(path)
	return kustomizations, err
}

// walkManifests walks path as LoadStatic does and returns the manifest files
// it reads and the kustomize configuration files it skips.
func walkManifests(path string) (files, kustomizations []string, err error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != path && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
		case kustomizationFiles[d.Name()]:
			kustomizations = append(kustomizations, p)
		case isManifestName(d.Name()):
			files = append(files, p)
		}
		return nil
	})
	return files, kustomizations, err
}

// isManifestName reports whether a file found in a directory is read.
func isManifestName(name string) bool {
	if kustomizationFiles[name] {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// loadFile decodes every document of one file.
func (s *Static) loadFile(dec runtime.Decoder, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return eachDocument(f, path, func(src string, data []byte, line int) error {
		return s.addDocument(dec, data, src, line)
	})
}

// eachDocument splits r at "---" lines and calls fn with every document,
// blank ones included, its source "name#N" (see LoadStatic) and the line of
// the file it starts on. Read errors and a document over maxDocumentBytes
// name the document being read.
func eachDocument(r io.Reader, name string, fn func(src string, data []byte, line int) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxDocumentBytes)
	var buf bytes.Buffer
	doc := 1
	lineNo, start := 0, 1 // the line read, the line the document starts on
	opened := false       // whether a separator has opened document 1
	src := func(doc int) string { return fmt.Sprintf("%s#%d", name, doc) }
	for sc.Scan() {
		line := sc.Bytes()
		lineNo++
		// The first separator, if only blank lines precede it, opens
		// document 1 rather than closing an empty one.
		opens := doc + 1
		if !opened && doc == 1 && len(bytes.TrimSpace(buf.Bytes())) == 0 {
			opens = 1
		}
		sep, err := isSeparator(line)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", src(opens), err)
		case sep && opens == 1:
			buf.Reset()
			opened = true
			start = lineNo + 1
		case sep:
			if err := fn(src(doc), buf.Bytes(), start); err != nil {
				return err
			}
			buf.Reset()
			doc++
			start = lineNo + 1
		case buf.Len()+len(line)+1 > maxDocumentBytes:
			return fmt.Errorf("%s: %w", src(doc), errDocumentTooLarge)
		default:
			buf.Write(line)
			buf.WriteByte('\n')
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%s: %w", src(doc), errDocumentTooLarge)
	} else if err != nil {
		return fmt.Errorf("%s: %w", src(doc), err)
	}
	return fn(src(doc), buf.Bytes(), start)
}

var errDocumentTooLarge = fmt.Errorf("document is over the %d byte limit", maxDocumentBytes)

// isSeparator reports whether line is a document separator: "---" alone or
// followed by a comment. Anything else after "---" is an error, as in the API
// machinery's YAML reader.
func isSeparator(line []byte) (bool, error) {
	rest, ok := bytes.CutPrefix(line, []byte(documentSeparator))
	if !ok {
		return false, nil
	}
	if rest = bytes.TrimSpace(rest); len(rest) > 0 && rest[0] != '#' {
		return false, fmt.Errorf("invalid YAML document separator %q: only a comment may follow %q", line, documentSeparator)
	}
	return true, nil
}

// addDocument decodes one document, which starts on line of its file (0 when
// it is an item of a List, whose lines are not the file's: a k0s
// ClusterConfig there is not read strictly); empty documents and comments
// are skipped.
func (s *Static) addDocument(dec runtime.Decoder, data []byte, src string, line int) error {
	if isBlank(data) {
		return nil
	}
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: invalid YAML: %w", src, err)
	}
	var tm metav1.TypeMeta
	if err := utilyaml.Unmarshal(js, &tm); err != nil || tm.Kind == "" || tm.APIVersion == "" {
		return fmt.Errorf("%s: not a Kubernetes object: apiVersion and kind are required", src)
	}
	gvk := tm.GroupVersionKind()
	obj, _, err := dec.Decode(js, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		u, uerr := decodeUnstructured(js)
		if uerr != nil {
			return fmt.Errorf("%s: %w", src, uerr)
		}
		obj, err = u, nil
	}
	if err != nil {
		return fmt.Errorf("%s: decoding %s: %w", src, gvk.Kind, err)
	}
	if list, ok := obj.(*corev1.List); ok {
		for i, item := range list.Items {
			if err := s.addDocument(dec, item.Raw, fmt.Sprintf("%s[%d]", src, i), 0); err != nil {
				return err
			}
		}
		return nil
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if m, err := metaOf(obj); err == nil && m.GetNamespace() == "" {
		if ns, ok := impliedNamespace[gvk.GroupKind()]; ok {
			m.SetNamespace(ns)
		} else if s.defaultNamespace != "" && !clusterScoped[gvk.GroupKind()] {
			m.SetNamespace(s.defaultNamespace)
		}
	}
	if cfg, ok := obj.(*k0s.ClusterConfig); ok && line > 0 {
		// k0s reads its config file strictly; the text is here, not in
		// the decoded object.
		cfg.Strict = k0s.CheckStrict(data, line, "")
	}
	s.addLoaded(Loaded{Object: obj, GVK: gvk, Source: src})
	return s.addEmbedded(obj, data, src, line)
}

// addEmbedded adds the k0s ClusterConfig a k0sctl.yaml Cluster embeds, as a
// document of its own with source "file#N spec.k0s.config", with what k0s's
// strict reading of data (the k0sctl.yaml document, from line) refuses in it.
func (s *Static) addEmbedded(obj runtime.Object, data []byte, src string, line int) error {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	cfg, ok, err := k0s.FromK0sctl(u.Object)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if ok {
		if line > 0 {
			cfg.Strict = k0s.CheckStrict(data, line, k0s.K0sctlConfigPath)
		}
		s.addLoaded(Loaded{Object: cfg, GVK: cfg.GroupVersionKind(), Source: src + " " + k0s.K0sctlConfigPath})
	}
	return nil
}

// impliedNamespace is the namespace of kinds that live in one namespace
// whatever the file says: k0s reads its ClusterConfig from kube-system, and
// a k0s.yaml names none.
var impliedNamespace = map[schema.GroupKind]string{k0s.ClusterConfigKind: k0s.Namespace}

// clusterScoped are the cluster-scoped kinds a manifest set commonly holds;
// every other kind is taken to be namespaced when a default namespace applies.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true, {Kind: "Node"}: true, {Kind: "PersistentVolume"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                   true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                               true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                                true,
	{Group: "cert-manager.io", Kind: "ClusterIssuer"}:                                 true,
}

func isBlank(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
