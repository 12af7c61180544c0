package netpol

import (
	"strconv"
	"strings"
)

// path is a field path, rendered only when an issue is reported. It is a
// value of fixed size so that compiling a valid policy allocates no strings
// and no path nodes.
type path struct {
	n    int
	segs [maxDepth]segment
}

// maxDepth is the deepest path compiled:
// spec.ingress[i].from[j].namespaceSelector.matchExpressions[k].
const maxDepth = 6

// segment is "name" or "name[index]" (index >= 0).
type segment struct {
	name  string
	index int
}

// field is the child path .name.
func (p path) field(name string) path { return p.at(name, -1) }

// at is the child path .name[i].
func (p path) at(name string, i int) path {
	if p.n < maxDepth {
		p.segs[p.n] = segment{name: name, index: i}
		p.n++
	}
	return p
}

// String renders "spec.ingress[0].from[1].ipBlock.cidr".
func (p path) String() string {
	var b strings.Builder
	for i, s := range p.segs[:p.n] {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}

// reporter records the issues of one policy that matter to direction d, or
// to both directions.
type reporter struct {
	p    *policy
	d    direction
	both bool
}

func (r reporter) add(f path, detail string) {
	is := Issue{Kind: r.p.kind, Policy: r.p.ref, Field: f.String(), Detail: detail}
	r.p.all = append(r.p.all, is)
	if r.both || r.d == ingress {
		r.p.issues[ingress] = append(r.p.issues[ingress], is)
	}
	if r.both || r.d == egress {
		r.p.issues[egress] = append(r.p.issues[egress], is)
	}
}
