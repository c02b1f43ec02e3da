package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import "go.opentelemetry.io/collector/pdata/pcommon"

// field is one of the attribute lists of AttributesConfig that a span is
// read for.
type field uint8

const (
	fieldXFCC field = iota
	fieldRequestHeaders
	fieldXFCCBy
	fieldXFCCURI
	fieldMethod
	fieldPath
	fieldURL
	fieldRoute
	fieldStatusCode
	fieldGRPCStatusCode
	fieldResponseHeaders
	fieldRPCSystem
	fieldContentType
	numFields
)

// attrNames numbers every configured name of every field: a slot. A span's
// attributes are then read in one pass (attrIndex.read) instead of one scan
// per name, most of them absent.
type attrNames struct {
	slots map[string][]int // a name may be in several lists
	first [numFields + 1]int
	// ends has, by length, a bit for the last byte (modulo 64) of the
	// names of that length, so that most attributes are passed over
	// without hashing their names.
	ends [128]uint64
}

func newAttrNames(a AttributesConfig) attrNames {
	lists := [numFields][]string{
		fieldXFCC: a.XFCC, fieldRequestHeaders: a.RequestHeaders, fieldXFCCBy: a.XFCCBy, fieldXFCCURI: a.XFCCURI,
		fieldMethod: a.Method, fieldPath: a.Path, fieldURL: a.URL, fieldRoute: a.Route,
		fieldStatusCode: a.StatusCode, fieldGRPCStatusCode: a.GRPCStatusCode, fieldResponseHeaders: a.ResponseHeaders,
		fieldRPCSystem: a.RPCSystem, fieldContentType: a.ContentType,
	}
	n := attrNames{slots: map[string][]int{}}
	slot := 0
	for f, names := range lists {
		n.first[f] = slot
		for _, name := range names {
			n.slots[name] = append(n.slots[name], slot)
			if len(name) < len(n.ends) {
				n.ends[len(name)] |= n.end(name)
			}
			slot++
		}
	}
	n.first[numFields] = slot
	return n
}

// end is name's bit in ends.
func (*attrNames) end(name string) uint64 {
	if name == "" {
		return 1
	}
	return 1 << (name[len(name)-1] % 64)
}

// each calls fn with the value of every name of f present in m, in the
// order of f's list.
func (n *attrNames) each(f field, m *attrIndex, fn func(pcommon.Value)) {
	for s := n.first[f]; s < n.first[f+1]; s++ {
		if v, ok := m.get(s); ok {
			fn(v)
		}
	}
}

// attrIndex holds the values of one attribute map by slot.
type attrIndex struct {
	vals []pcommon.Value
	// found is the number of the read that found vals[s]: values found by
	// an earlier read than the current one (cur) are stale.
	found []uint32
	cur   uint32
}

func newAttrIndex(n *attrNames) attrIndex {
	slots := n.first[numFields]
	return attrIndex{vals: make([]pcommon.Value, slots), found: make([]uint32, slots)}
}

// read replaces what ix holds with the values of m. Of a name that m holds
// twice, the first is kept, as Map.Get finds it.
func (ix *attrIndex) read(n *attrNames, m pcommon.Map) {
	ix.cur++
	for k, v := range m.All() {
		if len(k) < len(n.ends) && n.ends[len(k)]&n.end(k) == 0 {
			continue
		}
		for _, s := range n.slots[k] {
			if ix.found[s] != ix.cur {
				ix.found[s] = ix.cur
				ix.vals[s] = v
			}
		}
	}
}

func (ix *attrIndex) get(slot int) (pcommon.Value, bool) {
	if ix.found[slot] != ix.cur {
		return pcommon.Value{}, false
	}
	return ix.vals[slot], true
}
