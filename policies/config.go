package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

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
type Config struct {
	// Mode is the global mode. Default ModeEnforce.
	Mode Mode
	// Rules overrides the action of named rules. Default: none overridden.
	Rules map[string]Action
	// ExemptNamespaces are never evaluated: objects in them, and APIServices
	// whose backend Service is in them. Default: none.
	ExemptNamespaces []string
	// ControlPlaneCIDRs are ranges the control plane connects from besides
	// what the cluster shows (e.g. GKE's master-ipv4-cidr); set from the
	// --control-plane-cidr flag, not the file. Default: none.
	ControlPlaneCIDRs []netip.Prefix
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
	Mode             string    `yaml:"mode"`
	ExemptNamespaces []string  `yaml:"exemptNamespaces"`
	Rules            yaml.Node `yaml:"rules"`
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
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("config must be a single YAML document")
	}
	switch Mode(strings.ToLower(fc.Mode)) {
	case "", ModeEnforce:
	case ModeAudit:
		cfg.Mode = ModeAudit
	default:
		return Config{}, fmt.Errorf("mode: unknown mode %q, want enforce or audit", fc.Mode)
	}
	for i, ns := range fc.ExemptNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return Config{}, fmt.Errorf("exemptNamespaces[%d]: %q is not a namespace name: %s", i, ns, strings.Join(errs, "; "))
		}
	}
	cfg.ExemptNamespaces = fc.ExemptNamespaces
	actions, err := parseRuleActions(&fc.Rules, rules)
	if err != nil {
		return Config{}, err
	}
	cfg.Rules = actions
	return cfg, nil
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
