package netpol

import (
	"net/netip"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// ipBlock is a compiled networkingv1.IPBlock.
type ipBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

// contains reports whether a is inside cidr and outside every except.
func (b *ipBlock) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("").Unmap()
	if !b.cidr.Contains(a) {
		return false
	}
	for _, e := range b.except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// compileIPBlock compiles b at field path f, reporting problems through r; ok
// is false when the block is invalid and must match nothing.
func compileIPBlock(b *networkingv1.IPBlock, f path, r reporter) (ipBlock, bool) {
	var out ipBlock
	cidr, err := parsePrefix(b.CIDR)
	if err != "" {
		cf := f.field("cidr")
		r.add(cf, err+"; the peer matches nothing")
		return out, false
	}
	out.cidr = cidr
	ok := true
	for i, s := range b.Except {
		ef := f.at("except", i)
		e, err := parsePrefix(s)
		switch {
		case err != "":
			r.add(ef, err+"; the peer matches nothing")
			ok = false
		case e.Addr().Is4() != cidr.Addr().Is4() || e.Bits() <= cidr.Bits() || !cidr.Contains(e.Addr()):
			r.add(ef, strconv.Quote(s)+" is not a strict subset of cidr "+strconv.Quote(b.CIDR)+"; the peer matches nothing")
			ok = false
		default:
			out.except = append(out.except, e)
		}
	}
	return out, ok
}

// parsePrefix parses a CIDR as the API server's legacy parser does: host bits
// are masked, IPv4 octets may carry leading zeros (read as decimal), and an
// IPv4-mapped IPv6 prefix of /96 or longer is the IPv4 prefix it maps. It
// returns a problem description instead of an error to keep callers simple.
func parsePrefix(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		alt, changed := trimOctetZeros(s)
		if !changed {
			return p, "invalid CIDR " + strconv.Quote(s)
		}
		if p, err = netip.ParsePrefix(alt); err != nil {
			return p, "invalid CIDR " + strconv.Quote(s)
		}
	}
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, ""
}

// trimOctetZeros rewrites "010.001.0.0/016" as "10.1.0.0/16": leading zeros
// of the prefix length, and of IPv4 octets, which the legacy parser reads as
// decimal. changed is false when there was nothing to rewrite.
func trimOctetZeros(s string) (string, bool) {
	addr, bits, found := strings.Cut(s, "/")
	if !found {
		return s, false
	}
	bits, changed := trimZeros(bits)
	if strings.Contains(addr, ":") {
		return addr + "/" + bits, changed
	}
	octets := strings.Split(addr, ".")
	for i, o := range octets {
		t, c := trimZeros(o)
		octets[i], changed = t, changed || c
	}
	return strings.Join(octets, ".") + "/" + bits, changed
}

// trimZeros drops leading zeros from a decimal number, keeping one digit.
func trimZeros(s string) (string, bool) {
	t := strings.TrimLeft(s, "0")
	if t == "" && s != "" {
		t = "0"
	}
	return t, t != s
}
