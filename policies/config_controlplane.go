package policies

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ControlPlane says where the API server's connections to backend pods come
// from (DESIGN "Control-plane sources"). The first that applies wins:
//
//  1. CIDRs, when set, are the sources: what the admin states replaces
//     autodetection.
//  2. Where konnectivity-agent pods run, the API server reaches pods through
//     them: the agents are the sources, the API server's own addresses are not.
//  3. Otherwise the addresses of the default/kubernetes EndpointSlice and the
//     InternalIPs of control-plane nodes.
type ControlPlane struct {
	// CIDRs are the ranges the control plane connects from, e.g. GKE's
	// master-ipv4-cidr. Default: none, autodetect.
	CIDRs []netip.Prefix
	// KonnectivityAgentSelector selects the konnectivity-agent pods by label.
	// Default {k8s-app: konnectivity-agent}.
	KonnectivityAgentSelector map[string]string
	// KonnectivityAgentNamespace is where the agents run. Default kube-system.
	KonnectivityAgentNamespace string
}

// Defaults of ControlPlane.
const (
	defaultKonnectivityLabel     = "k8s-app"
	defaultKonnectivityValue     = "konnectivity-agent"
	defaultKonnectivityNamespace = "kube-system"
)

// AgentNamespace is the konnectivity agents' namespace, defaulted.
func (c ControlPlane) AgentNamespace() string {
	if c.KonnectivityAgentNamespace == "" {
		return defaultKonnectivityNamespace
	}
	return c.KonnectivityAgentNamespace
}

// AgentLabels is the konnectivity agents' label selector, defaulted.
func (c ControlPlane) AgentLabels() map[string]string {
	if len(c.KonnectivityAgentSelector) == 0 {
		return map[string]string{defaultKonnectivityLabel: defaultKonnectivityValue}
	}
	return c.KonnectivityAgentSelector
}

// parseControlPlane reads the controlPlane mapping; what it leaves out stays
// zero, which means the default.
func parseControlPlane(node *yaml.Node) (ControlPlane, error) {
	var c ControlPlane
	if node.Kind == 0 || node.Tag == "!!null" {
		return c, nil
	}
	if node.Kind != yaml.MappingNode {
		return c, fmt.Errorf("line %d: controlPlane: must be a mapping with cidrs, konnectivityAgentSelector and konnectivityAgentNamespace", node.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		field := "controlPlane." + key.Value
		if seen[key.Value] {
			return ControlPlane{}, fmt.Errorf("line %d: %s: field listed twice", key.Line, field)
		}
		seen[key.Value] = true
		var err error
		switch key.Value {
		case "cidrs":
			c.CIDRs, err = parseCIDRList(val)
		case "konnectivityAgentSelector":
			c.KonnectivityAgentSelector, err = parseLabelMap(val)
		case "konnectivityAgentNamespace":
			c.KonnectivityAgentNamespace, err = parseNamespaceName(val)
		default:
			err = fmt.Errorf("unknown field, want cidrs, konnectivityAgentSelector or konnectivityAgentNamespace")
			val = key
		}
		if err != nil {
			return ControlPlane{}, fmt.Errorf("line %d: %s: %w", val.Line, field, err)
		}
	}
	return c, nil
}

func parseCIDRList(val *yaml.Node) ([]netip.Prefix, error) {
	var raw []string
	if val.Kind != yaml.SequenceNode || val.Decode(&raw) != nil {
		return nil, fmt.Errorf("must be a list of CIDRs")
	}
	out := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		p, err := ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseCIDR parses a control-plane CIDR as the flag and the config give it:
// a network address ("172.16.0.0/28", not "172.16.0.1/28").
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR (want e.g. 172.16.0.0/28): %w", err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s?", p.Masked())
	}
	return p, nil
}

func parseLabelMap(val *yaml.Node) (map[string]string, error) {
	var m map[string]string
	if val.Kind != yaml.MappingNode || val.Decode(&m) != nil || len(m) == 0 {
		return nil, fmt.Errorf("must be a non-empty mapping of label name to value")
	}
	if _, err := labels.ValidatedSelectorFromSet(m); err != nil {
		return nil, err
	}
	return m, nil
}

func parseNamespaceName(val *yaml.Node) (string, error) {
	if val.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("must be a namespace name")
	}
	if errs := validation.IsDNS1123Label(val.Value); len(errs) > 0 {
		return "", fmt.Errorf("%q is not a namespace name: %s", val.Value, strings.Join(errs, "; "))
	}
	return val.Value, nil
}
