package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	"apiservice-guard.io/apiservice-guard/cluster"
	"apiservice-guard.io/apiservice-guard/policies"
)

// Output formats of the check command.
const (
	outputText = "text"
	outputJSON = "json"
)

// Standard input: the -f value that reads it, and its name in messages.
const (
	stdinPath = "-"
	stdinName = "<stdin>"
)

// checkOptions are the flags of the check command.
type checkOptions struct {
	// files are manifest files or directories, "-" for standard input.
	// Required.
	files []string
	// output is the report format, text or json. Default text.
	output string
	// namespace is given to namespaced objects that name none, as kubectl
	// apply would. Default "default".
	namespace string
	// configPath is the policy config file. Default: none, every rule at its
	// default action.
	configPath string
	// controlPlaneCIDRs are the CIDRs the control plane connects from, as
	// given: offline, the only control-plane sources besides what the files
	// show. Default: none.
	controlPlaneCIDRs []string
	// controlPlanePrefixes is controlPlaneCIDRs parsed by validate.
	controlPlanePrefixes []netip.Prefix
}

// newCheckCommand returns the check command: the policy engine run offline on
// manifests, the files serving as both the objects under review and the
// cluster view.
func newCheckCommand() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check -f PATH [-f PATH ...] [-o text|json] [--config FILE]",
		Short: "Check manifests offline with the admission policies",
		Long: `Check runs the admission policies on manifests, without a cluster: every
object the policies review is checked as if created, in a cluster holding
everything given with -f. Exit code 0: nothing would be denied; 1: at least one
Enforce finding; 2: bad usage, unreadable input or bad config.`,
		Example: `  apiservice-guard check -f keda/
  helm template keda kedacore/keda | apiservice-guard check -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil,
		`manifest file or directory (recursive: *.yaml, *.yml, *.json), "-" for standard input; repeatable, required`)
	f.StringVarP(&o.output, "output", "o", outputText, "report format: text or json")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "namespace for namespaced objects that name none, as kubectl apply -n would")
	f.StringVar(&o.configPath, "config", "", "policy config file (YAML); default: every rule at its default action")
	f.StringArrayVar(&o.controlPlaneCIDRs, "control-plane-cidr", nil,
		"CIDR the control plane connects from (repeatable), e.g. a GKE master-ipv4-cidr")
	return cmd
}

// validate checks the flags that need no file access.
func (o *checkOptions) validate() error {
	if len(o.files) == 0 {
		return errors.New(`no manifests: pass -f PATH (a file, a directory, or "-" for standard input)`)
	}
	if i := slices.Index(o.files, stdinPath); i >= 0 && slices.Contains(o.files[i+1:], stdinPath) {
		return fmt.Errorf("-f %s given twice: standard input can be read only once", stdinPath)
	}
	if o.output != outputText && o.output != outputJSON {
		return fmt.Errorf("-o %q: unknown output format, want %s or %s", o.output, outputText, outputJSON)
	}
	// parseCIDRs (serve.go) applies the same rules as serve's flag.
	prefixes, err := parseCIDRs(o.controlPlaneCIDRs)
	if err != nil {
		return err
	}
	o.controlPlanePrefixes = prefixes
	return nil
}

// runCheck checks the manifests and writes the report to stdout, and notes
// about the input (an object defined twice, a kustomization read as plain
// files) to stderr. It returns an *exitError: exitFindings when a finding is
// Enforce, exitUsage for bad flags, config or input.
func runCheck(ctx context.Context, o *checkOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func(err error) error { return &exitError{code: exitUsage, err: err} }
	if err := o.validate(); err != nil {
		return usage(err)
	}
	engine, err := checkEngine(o.configPath, o.controlPlanePrefixes)
	if err != nil {
		return usage(err)
	}
	// Before loading: a kustomization's patches are often what fails to load.
	for _, note := range kustomizationNotes(o.files) {
		fmt.Fprintln(stderr, "note:", note)
	}
	m, err := loadManifests(o.files, o.namespace, stdin)
	if err != nil {
		return usage(err)
	}
	for _, note := range m.static.Notes() {
		fmt.Fprintln(stderr, "note:", note)
	}
	rep := evaluate(ctx, engine, m)
	if o.output == outputJSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		return usage(fmt.Errorf("writing report: %w", err))
	}
	if n := rep.count(policies.Enforce); n > 0 {
		return &exitError{code: exitFindings, err: fmt.Errorf("%d Enforce finding(s)", n)}
	}
	return nil
}

// checkEngine builds the engine from the config file, or the defaults.
func checkEngine(configPath string, cidrs []netip.Prefix) (*policies.Engine, error) {
	rules := policies.DefaultRules()
	cfg := policies.Config{Mode: policies.ModeEnforce}
	if configPath != "" {
		var err error
		if cfg, err = policies.LoadConfig(configPath, rules); err != nil {
			return nil, err
		}
	}
	if len(cidrs) > 0 { // the flag replaces the config file's controlPlane.cidrs
		cfg.ControlPlane.CIDRs = cidrs
	}
	return policies.NewEngine(cfg, rules)
}

// manifests are the loaded files. Standard input is read from a temporary
// file, which messages call stdinName.
type manifests struct {
	static    *cluster.Static
	stdinFile string
}

// source is l's "file#document", with standard input named stdinName.
func (m manifests) source(l cluster.Loaded) string {
	if m.stdinFile == "" {
		return l.Source
	}
	return strings.Replace(l.Source, m.stdinFile, stdinName, 1)
}

// loadManifests loads the files into a static view, copying standard input to
// a temporary file first ("-" may appear once: validate checks it).
func loadManifests(paths []string, namespace string, stdin io.Reader) (manifests, error) {
	i := slices.Index(paths, stdinPath)
	if i < 0 {
		static, err := cluster.LoadStaticInNamespace(namespace, paths...)
		return manifests{static: static}, err
	}
	dir, err := os.MkdirTemp("", "apiservice-guard-check-")
	if err != nil {
		return manifests{}, err
	}
	defer os.RemoveAll(dir)
	m := manifests{stdinFile: filepath.Join(dir, "stdin.yaml")}
	if err := copyToFile(m.stdinFile, stdin); err != nil {
		return manifests{}, fmt.Errorf("reading standard input: %w", err)
	}
	paths = slices.Clone(paths)
	paths[i] = m.stdinFile
	if m.static, err = cluster.LoadStaticInNamespace(namespace, paths...); err != nil {
		// The error is only printed, so flattening its chain loses nothing.
		return manifests{}, errors.New(strings.ReplaceAll(err.Error(), m.stdinFile, stdinName))
	}
	return m, nil
}

// kustomizationNotes are hints for the kustomizations in the directories
// given with -f, one per directory holding a kustomization file: check reads
// their files as they are, which is not what kustomize builds from them.
// Paths that cannot be walked give none; loading reports them.
func kustomizationNotes(paths []string) []string {
	var notes []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == stdinPath {
			continue
		}
		files, err := cluster.Kustomizations(p)
		if err != nil {
			continue
		}
		for _, f := range files {
			dir := filepath.Dir(f)
			if seen[dir] {
				continue
			}
			seen[dir] = true
			notes = append(notes, fmt.Sprintf("%s holds a %s; its files were read as they are, not built: "+
				"check what it builds with: kubectl kustomize %s | apiservice-guard check -f -",
				dir, filepath.Base(f), shellQuote(dir)))
		}
	}
	return notes
}

// shellQuote quotes s for a POSIX shell when it holds more than ASCII
// letters, digits and "-_./:+=@,".
func shellQuote(s string) string {
	const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:+=@,"
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(safe, r) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func copyToFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// located is a finding with the file and document of its object.
type located struct {
	policies.Finding
	source string
}

// report is the outcome of a check.
type report struct {
	findings []located
	// checked is the number of objects the engine reviewed.
	checked int
}

// evaluate reviews every document of a kind the engine handles as a CREATE,
// with the static view as the cluster, in file order. An object defined twice
// is reviewed twice: both are something a person may apply.
func evaluate(ctx context.Context, engine *policies.Engine, m manifests) report {
	var rep report
	for _, l := range m.static.Documents() {
		gk := l.GVK.GroupKind()
		if !engine.Handles(gk) {
			continue
		}
		om, err := meta.Accessor(l.Object)
		if err != nil {
			continue // every handled kind is a typed object with metadata
		}
		rep.checked++
		review := &policies.Review{
			Operation: policies.Create, Judge: policies.JudgeState, Kind: gk, Object: l.Object,
			Namespace: om.GetNamespace(), Name: om.GetName(),
		}
		for _, f := range engine.Evaluate(ctx, review, m.static) {
			rep.findings = append(rep.findings, located{Finding: f, source: m.source(l)})
		}
	}
	return rep
}

// count returns the number of findings with action a.
func (r report) count(a policies.Action) int {
	n := 0
	for _, f := range r.findings {
		if f.Action == a {
			n++
		}
	}
	return n
}

// writeText writes one line per finding, then a summary:
//
//	ENFORCE  APIService/v1beta1.metrics.k8s.io (ms.yaml#3)  [rule] message  Fix: fix
//	1 finding: 1 enforce, 0 warn, 0 audit (1 object checked)
func (r report) writeText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.findings {
		fmt.Fprintf(&b, "%-7s  %s (%s)  [%s] %s", strings.ToUpper(string(f.Action)), printable(objectName(f.Object)), printable(f.source), f.Rule, printable(f.Message))
		if f.Fix != "" {
			b.WriteString("  Fix: " + printable(f.Fix))
		}
		b.WriteByte('\n')
	}
	checked := plural(r.checked, "object") + " checked"
	if len(r.findings) == 0 {
		fmt.Fprintf(&b, "no findings (%s)\n", checked)
	} else {
		fmt.Fprintf(&b, "%s: %d enforce, %d warn, %d audit (%s)\n", plural(len(r.findings), "finding"),
			r.count(policies.Enforce), r.count(policies.Warn), r.count(policies.Audit), checked)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// checkJSON is the JSON report: {"findings":[...]}, never null.
type checkJSON struct {
	Findings []checkFinding `json:"findings"`
}

// checkFinding is one finding of the JSON report: what the text report shows
// of it. Every field but detail is always present, fix empty when there is
// none; policies.Finding (the webhook's shape) omits an empty fix, so the
// report has a shape of its own.
type checkFinding struct {
	Rule   string             `json:"rule"`
	Action policies.Action    `json:"action"`
	Object policies.ObjectRef `json:"object"`
	// Source is the object's "file#document", standard input named stdinName.
	Source  string `json:"source"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
	// Detail is a longer explanation some rules give; omitted when empty.
	Detail string `json:"detail,omitempty"`
}

// writeJSON writes the report as one line of JSON.
func (r report) writeJSON(w io.Writer) error {
	out := checkJSON{Findings: make([]checkFinding, 0, len(r.findings))}
	for _, f := range r.findings {
		out.Findings = append(out.Findings, checkFinding{
			Rule: f.Rule, Action: f.Action, Object: f.Object, Source: f.source,
			Message: f.Message, Fix: f.Fix, Detail: f.Detail,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages hold "<service>.<namespace>.svc"
	return enc.Encode(out)
}

// objectName is "Kind/name" or "Kind/namespace/name".
func objectName(ref policies.ObjectRef) string {
	if ref.Namespace == "" {
		return ref.Kind + "/" + ref.Name
	}
	return ref.Kind + "/" + ref.Namespace + "/" + ref.Name
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
