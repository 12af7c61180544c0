package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Mode is the global enforcement mode.
type Mode string

const (
	// ModeEnforce applies each rule's action as configured.
	ModeEnforce Mode = "enforce"
	// ModeAudit turns every Enforce into Audit: a dry run for rollout.
	ModeAudit Mode = "audit"
)

// Config is the guard's policy configuration, usually read from a YAML file:
//
//	mode: enforce            # or audit; default enforce
//	exemptNamespaces: [dev]  # default none
//	rules:                   # default: each rule's own default action
//	  apiservice-insecure-skip-tls: Off
//	  apiservice-port-mismatch: Warn
//	caBundleChurn:           # apiservice-cabundle-churn
//	  window: 10m            # default 10m
//	  replacements: 3        # default 3, from 2 to 64
//	controlPlane:            # where the control plane connects from
//	  cidrs: [172.16.0.0/28] # default none: autodetect
//	  konnectivityAgentSelector: {k8s-app: konnectivity-agent}
//	  konnectivityAgentNamespace: kube-system
type Config struct {
	// Mode is the global mode. Default ModeEnforce.
	Mode Mode
	// Rules overrides the action of named rules. Default: none overridden.
	Rules map[string]Action
	// ExemptNamespaces are never evaluated: objects in them, and APIServices
	// whose backend Service is in them. Default: none.
	ExemptNamespaces []string
	// ControlPlane says where the control plane's connections come from.
	// Default: autodetected (see ControlPlane).
	ControlPlane ControlPlane
	// CABundleChurn tunes apiservice-cabundle-churn. Zero fields mean the
	// defaults (window 10m, 3 replacements).
	CABundleChurn ChurnConfig
}

// ChurnConfig says when caBundle replacements of one APIService are a fight:
// Replacements or more within Window, the write under review included, by two
// or more field managers.
type ChurnConfig struct {
	// Window is how far back replacements count. Default 10m; must be > 0.
	Window time.Duration
	// Replacements is how many replacements within Window make a finding.
	// Default 3; from 2 to 64 (the guard remembers 64 per APIService).
	Replacements int
}

// Bounds and defaults of ChurnConfig.
const (
	defaultChurnWindow       = 10 * time.Minute
	defaultChurnReplacements = 3
	minChurnReplacements     = 2
	maxChurnReplacements     = 64
)

// withDefaults fills in zero fields and checks the bounds.
func (c ChurnConfig) withDefaults() (ChurnConfig, error) {
	if c.Window == 0 {
		c.Window = defaultChurnWindow
	}
	if c.Replacements == 0 {
		c.Replacements = defaultChurnReplacements
	}
	if c.Window < 0 {
		return ChurnConfig{}, fmt.Errorf("caBundleChurn.window: %s is not positive", c.Window)
	}
	if c.Replacements < minChurnReplacements || c.Replacements > maxChurnReplacements {
		return ChurnConfig{}, fmt.Errorf("caBundleChurn.replacements: %d is out of range, want %d to %d",
			c.Replacements, minChurnReplacements, maxChurnReplacements)
	}
	return c, nil
}

// actionFor returns the configured action of a rule, else its default.
func (c Config) actionFor(r *Rule) Action {
	if a, ok := c.Rules[r.Name]; ok {
		return a
	}
	return r.Default
}

// effective applies an advisory cap and the global mode to an action.
func (c Config) effective(a Action, advisory bool) Action {
	if advisory && a == Enforce {
		a = Warn
	}
	if c.Mode == ModeAudit && a == Enforce {
		a = Audit
	}
	return a
}

// fileConfig is the YAML shape of Config; rules is kept as a node so that
// errors can name the line of a bad entry.
type fileConfig struct {
	Mode             yaml.Node `yaml:"mode"`
	ExemptNamespaces yaml.Node `yaml:"exemptNamespaces"`
	Rules            yaml.Node `yaml:"rules"`
	CABundleChurn    yaml.Node `yaml:"caBundleChurn"`
	ControlPlane     yaml.Node `yaml:"controlPlane"`
}

// LoadConfig reads and validates a config file against the rule catalogue.
func LoadConfig(path string, rules []Rule) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := ParseConfig(data, rules)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates YAML config. Unknown fields, unknown rule
// names, unknown actions and modes are errors naming the line. Empty input is
// the default config.
func ParseConfig(data []byte, rules []Rule) (Config, error) {
	cfg := Config{Mode: ModeEnforce}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("config must be a single YAML document")
	}
	if err := checkTopLevel(&doc); err != nil {
		return Config{}, err
	}
	var fc fileConfig
	if err := doc.Decode(&fc); err != nil {
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	switch m := fc.Mode; {
	case m.Kind == 0 || m.Tag == "!!null":
	case m.Kind != yaml.ScalarNode:
		return Config{}, fmt.Errorf("line %d: mode: must be enforce or audit", m.Line)
	case Mode(strings.ToLower(m.Value)) == ModeEnforce:
	case Mode(strings.ToLower(m.Value)) == ModeAudit:
		cfg.Mode = ModeAudit
	default:
		return Config{}, fmt.Errorf("line %d: mode: unknown mode %q, want enforce or audit", m.Line, m.Value)
	}
	if ns := fc.ExemptNamespaces; ns.Kind != 0 && ns.Tag != "!!null" {
		if ns.Kind != yaml.SequenceNode {
			return Config{}, fmt.Errorf("line %d: exemptNamespaces: must be a list of namespace names", ns.Line)
		}
		for i, n := range ns.Content {
			if errs := validation.IsDNS1123Label(n.Value); n.Kind != yaml.ScalarNode || len(errs) > 0 {
				return Config{}, fmt.Errorf("line %d: exemptNamespaces[%d]: %q is not a namespace name: %s", n.Line, i, n.Value, strings.Join(errs, "; "))
			}
			cfg.ExemptNamespaces = append(cfg.ExemptNamespaces, n.Value)
		}
	}
	actions, err := parseRuleActions(&fc.Rules, rules)
	if err != nil {
		return Config{}, err
	}
	cfg.Rules = actions
	if cfg.CABundleChurn, err = parseChurnConfig(&fc.CABundleChurn); err != nil {
		return Config{}, err
	}
	if cfg.ControlPlane, err = parseControlPlane(&fc.ControlPlane); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// topLevelFields are the config file's fields.
var topLevelFields = []string{"mode", "exemptNamespaces", "rules", "caBundleChurn", "controlPlane"}

// checkTopLevel refuses a document that is not a mapping, and unknown or
// repeated top-level fields, naming their lines.
func checkTopLevel(doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("invalid YAML: line %d: the config must be a mapping of %s", root.Line, strings.Join(topLevelFields, ", "))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		switch {
		case !slices.Contains(topLevelFields, k.Value):
			return fmt.Errorf("line %d: unknown field %q (known: %s)", k.Line, k.Value, strings.Join(topLevelFields, ", "))
		case seen[k.Value]:
			return fmt.Errorf("line %d: %s: field listed twice", k.Line, k.Value)
		}
		seen[k.Value] = true
	}
	return nil
}

// parseChurnConfig reads the caBundleChurn mapping; what it leaves out stays
// zero, which means the default.
func parseChurnConfig(node *yaml.Node) (ChurnConfig, error) {
	var c ChurnConfig
	if node.Kind == 0 || node.Tag == "!!null" {
		return c, nil
	}
	if node.Kind != yaml.MappingNode {
		return c, fmt.Errorf("line %d: caBundleChurn: must be a mapping with window and replacements", node.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		field := "caBundleChurn." + key.Value
		if seen[key.Value] {
			return ChurnConfig{}, fmt.Errorf("line %d: %s: field listed twice", key.Line, field)
		}
		seen[key.Value] = true
		var err error
		switch key.Value {
		case "window":
			c.Window, err = parseChurnWindow(val)
		case "replacements":
			c.Replacements, err = parseChurnReplacements(val)
		default:
			err = errors.New("unknown field, want window or replacements")
			val = key
		}
		if err != nil {
			return ChurnConfig{}, fmt.Errorf("line %d: %s: %w", val.Line, field, err)
		}
	}
	return c, nil
}

func parseChurnWindow(val *yaml.Node) (time.Duration, error) {
	d, err := time.ParseDuration(val.Value)
	if err != nil || val.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("%q is not a Go duration such as 10m", val.Value)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s is not positive", val.Value)
	}
	return d, nil
}

func parseChurnReplacements(val *yaml.Node) (int, error) {
	var n int
	if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!int" || val.Decode(&n) != nil {
		return 0, fmt.Errorf("%q is not a whole number", val.Value)
	}
	if n < minChurnReplacements || n > maxChurnReplacements {
		return 0, fmt.Errorf("%d is out of range, want %d to %d", n, minChurnReplacements, maxChurnReplacements)
	}
	return n, nil
}

// parseRuleActions reads the rules mapping: rule name -> action.
func parseRuleActions(node *yaml.Node, rules []Rule) (map[string]Action, error) {
	if node.Kind == 0 || node.Tag == "!!null" {
		return nil, nil
	}
	if node.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: rules: must be a mapping of rule name to action", node.Line)
	}
	actions := map[string]Action{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		if !slices.ContainsFunc(rules, func(r Rule) bool { return r.Name == key.Value }) {
			return nil, fmt.Errorf("line %d: rules.%s: unknown rule %q (known: %s)", key.Line, key.Value, key.Value, ruleNames(rules))
		}
		if _, dup := actions[key.Value]; dup {
			return nil, fmt.Errorf("line %d: rules.%s: rule listed twice", key.Line, key.Value)
		}
		action, err := ParseAction(val.Value)
		if err != nil || val.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: rules.%s: unknown action %q, want Enforce, Warn, Audit or Off", val.Line, key.Value, val.Value)
		}
		actions[key.Value] = action
	}
	return actions, nil
}

// ParseAction parses an action name, case-insensitively.
func ParseAction(s string) (Action, error) {
	for _, a := range []Action{Enforce, Warn, Audit, Off} {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown action %q, want Enforce, Warn, Audit or Off", s)
}

func ruleNames(rules []Rule) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
