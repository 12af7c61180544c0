package k0s

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults k0s applies to fields a ClusterConfig leaves out.
const (
	DefaultProvider    = ProviderKubeRouter
	DefaultPodCIDR     = "10.244.0.0/16"
	DefaultServiceCIDR = "10.96.0.0/12"
	DefaultCalicoMode  = "vxlan"
	DefaultAgentPort   = 8132
	DefaultAdminPort   = 8133
	DefaultAPIPort     = 6443
)

// KubeletPort is the kubelet's port, which konnectivity must not take.
const KubeletPort = 10250

// Network providers k0s supports.
const (
	ProviderKubeRouter = "kuberouter"
	ProviderCalico     = "calico"
	ProviderCustom     = "custom"
)

const maxPort = 65535

var (
	providers   = []string{ProviderKubeRouter, ProviderCalico, ProviderCustom}
	calicoModes = []string{"bird", "vxlan", "ipip"}
)

// Spec is the part of a ClusterConfig spec the guard reads. Pointers tell a
// field left out (k0s's default applies) from one set.
type Spec struct {
	API          *API          `json:"api,omitempty"`
	Network      *Network      `json:"network,omitempty"`
	Konnectivity *Konnectivity `json:"konnectivity,omitempty"`
}

// API is spec.api: how the controller's API server listens.
type API struct {
	// Port is the API server port. Default 6443.
	Port *int `json:"port,omitempty"`
}

// Network is spec.network.
type Network struct {
	// Provider is kuberouter, calico or custom. Default kuberouter.
	Provider *string `json:"provider,omitempty"`
	// PodCIDR is the pod network. Default 10.244.0.0/16.
	PodCIDR *string `json:"podCIDR,omitempty"`
	// ServiceCIDR is the Service network. Default 10.96.0.0/12.
	ServiceCIDR *string `json:"serviceCIDR,omitempty"`
	// Calico configures calico when it is the provider.
	Calico *Calico `json:"calico,omitempty"`
}

// Calico is spec.network.calico.
type Calico struct {
	// Mode is bird, vxlan or ipip. Default vxlan.
	Mode *string `json:"mode,omitempty"`
	// IPAutodetectionMethod is how calico picks each node's address, e.g.
	// "can-reach=10.0.0.1" or "interface=eth1". Default: none, calico takes
	// the first interface it finds.
	IPAutodetectionMethod *string `json:"ipAutodetectionMethod,omitempty"`
}

// Konnectivity is spec.konnectivity: the ports of konnectivity-server on
// every controller.
type Konnectivity struct {
	// AgentPort is where agents connect. Default 8132.
	AgentPort *int `json:"agentPort,omitempty"`
	// AdminPort is the admin endpoint. Default 8133.
	AdminPort *int `json:"adminPort,omitempty"`
}

// Effective is a spec with k0s's defaults filled in.
type Effective struct {
	APIPort                     int
	Provider                    string
	PodCIDR, ServiceCIDR        string
	CalicoMode                  string
	CalicoIPAutodetectionMethod string
	AgentPort, AdminPort        int
}

// Effective returns the values k0s would run with.
func (s *Spec) Effective() Effective {
	e := Effective{APIPort: DefaultAPIPort, Provider: DefaultProvider, PodCIDR: DefaultPodCIDR,
		ServiceCIDR: DefaultServiceCIDR, AgentPort: DefaultAgentPort, AdminPort: DefaultAdminPort}
	if s == nil {
		return e
	}
	if s.API != nil {
		set(&e.APIPort, s.API.Port)
	}
	if n := s.Network; n != nil {
		set(&e.Provider, n.Provider)
		set(&e.PodCIDR, n.PodCIDR)
		set(&e.ServiceCIDR, n.ServiceCIDR)
		if c := n.Calico; c != nil {
			set(&e.CalicoMode, c.Mode)
			set(&e.CalicoIPAutodetectionMethod, c.IPAutodetectionMethod)
		}
	}
	if e.Provider == ProviderCalico && (s.Network == nil || s.Network.Calico == nil || s.Network.Calico.Mode == nil) {
		e.CalicoMode = DefaultCalicoMode
	}
	if k := s.Konnectivity; k != nil {
		set(&e.AgentPort, k.AgentPort)
		set(&e.AdminPort, k.AdminPort)
	}
	return e
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Validate reports the values k0s would refuse to run with, and konnectivity
// ports that are equal or collide with the API server's or the kubelet's.
func (s *Spec) Validate() field.ErrorList {
	e := s.Effective()
	root := field.NewPath("spec")
	nw, kon := root.Child("network"), root.Child("konnectivity")
	var errs field.ErrorList
	if !slices.Contains(providers, e.Provider) {
		errs = append(errs, field.NotSupported(nw.Child("provider"), e.Provider, providers))
	}
	for _, c := range []struct {
		name, value string
	}{{"podCIDR", e.PodCIDR}, {"serviceCIDR", e.ServiceCIDR}} {
		if _, err := ParseCIDR(c.value); err != nil {
			errs = append(errs, field.Invalid(nw.Child(c.name), c.value, err.Error()))
		}
	}
	// k0s drops the calico section unless calico is the provider.
	if mode := nw.Child("calico", "mode"); e.Provider == ProviderCalico {
		switch {
		case e.CalicoMode == "":
			errs = append(errs, field.Required(mode, ""))
		case !slices.Contains(calicoModes, e.CalicoMode):
			errs = append(errs, field.NotSupported(mode, e.CalicoMode, calicoModes))
		}
	}
	apiPort := root.Child("api", "port")
	errs = append(errs, validPort(apiPort, e.APIPort)...)
	ports := []struct {
		path *field.Path
		port int
	}{{kon.Child("agentPort"), e.AgentPort}, {kon.Child("adminPort"), e.AdminPort}}
	for i, p := range ports {
		if bad := validPort(p.path, p.port); len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		switch {
		case p.port == e.APIPort:
			errs = append(errs, field.Invalid(p.path, p.port, fmt.Sprintf("collides with the Kubernetes API server port (%s)", apiPort)))
		case p.port == KubeletPort:
			errs = append(errs, field.Invalid(p.path, p.port, "collides with the kubelet port 10250"))
		case i == 1 && p.port == e.AgentPort:
			errs = append(errs, field.Duplicate(p.path, p.port))
			errs[len(errs)-1].Detail = "equal to " + ports[0].path.String() + "; konnectivity-server needs two ports"
		}
	}
	return errs
}

func validPort(path *field.Path, port int) field.ErrorList {
	if port < 1 || port > maxPort {
		return field.ErrorList{field.Invalid(path, port, "must be between 1 and 65535, inclusive")}
	}
	return nil
}

// ParseCIDR parses a CIDR exactly as k0s does, with net.ParseCIDR (host
// bits may be set: "10.244.1.0/16" is 10.244.0.0/16), and returns the
// network.
func ParseCIDR(s string) (netip.Prefix, error) {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return netip.Prefix{}, errors.New("invalid CIDR address")
	}
	addr, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr, ones), nil
}
