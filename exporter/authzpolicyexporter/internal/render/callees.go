package render

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// CalleeBundle is one callee's own bundle: the same policy and operator
// data as the full bundle, but only that callee's grants and mode, so that
// its sidecar holds nothing it never uses. Its decisions for requests to
// that callee are the full bundle's.
type CalleeBundle struct {
	ID       string
	Revision string
	Tarball  []byte
}

// Cache keeps what Render made of each callee, so that a flush where one
// callee changed renders that callee again and reuses the others. It is
// not safe for concurrent use.
type Cache struct {
	callees map[string]*callee
	// compiled is the base whose operator data last compiled.
	compiled [32]byte
	// specs are the callees' specs of the current Render call, each
	// answering once per route: callers share their routes.
	specs map[specKey]*memoSpec
	// unseenKey is what the unseen bundle was made from.
	unseenKey    [32]byte
	unseenBundle *CalleeBundle
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{callees: map[string]*callee{}} }

// callee is what one callee's records render to.
type callee struct {
	// key identifies the input: the operator data, the options that shape
	// grants, the callee and its records' keys in order.
	key     [32]byte
	learned bool // some record was rendered (or denied)
	skipped int
	rules   []Rule
	denied  []Rule
	// file is the callers object, as the unpacked bundle's data.json (and
	// inside the tarballs, where its final newline is insignificant); nil
	// without grants. sum is its hash.
	file []byte
	sum  [32]byte
	// Aligned with the sorted records: the rule each record's evidence
	// goes to (-1 for none), whether the record is that very rule, and the
	// value bit a literal record stands for (0 keeps the record's own).
	cover []int32
	exact []bool
	bits  []uint64
	// alts are the rules granted as the other values of an operation's
	// enums, each with the record of the operation's use.
	alts []altEvidence
	// bundle is the callee's own bundle, made on first use.
	bundle *CalleeBundle
	entry  []byte // the entry bundle was made with
}

type specKey struct {
	digest [32]byte
	strict bool
}

// memoSpec is a Spec that answers each question once.
type memoSpec struct {
	Spec
	owns  map[string]bool
	taken map[string]takenRoutes
	alts  map[string][]route.Route
}

type takenRoutes struct {
	routes []route.Route
	whole  bool
}

// memo returns the memo of s for this Render call (nil for none).
func (c *Cache) memo(s Spec) Spec {
	if s == nil {
		return nil
	}
	k := specKey{s.Digest(), s.Strict()}
	m := c.specs[k]
	if m == nil {
		m = &memoSpec{Spec: s, owns: map[string]bool{}, taken: map[string]takenRoutes{}, alts: map[string][]route.Route{}}
		c.specs[k] = m
	}
	return m
}

func (m *memoSpec) Owns(method string, rt route.Route) bool {
	k := method + " " + rt.String()
	v, ok := m.owns[k]
	if !ok {
		v = m.Spec.Owns(method, rt)
		m.owns[k] = v
	}
	return v
}

func (m *memoSpec) Taken(method string, rt route.Route, operation bool) ([]route.Route, bool) {
	k := fmt.Sprint(method, " ", rt.String(), " ", operation)
	v, ok := m.taken[k]
	if !ok {
		v.routes, v.whole = m.Spec.Taken(method, rt, operation)
		m.taken[k] = v
	}
	return slices.Clone(v.routes), v.whole
}

func (m *memoSpec) Alternatives(method string, rt route.Route) []route.Route {
	k := method + " " + rt.String()
	v, ok := m.alts[k]
	if !ok {
		v = m.Spec.Alternatives(method, rt)
		m.alts[k] = v
	}
	return v
}

// altEvidence is a rule granted with an operation, and the record (the
// callee's record number) that used the operation.
type altEvidence struct{ rule, record int32 }

// base is what every callee's key starts from.
func (c *Cache) base(shared []byte, opts Options) [32]byte {
	h := sha256.New()
	h.Write(Policy)
	h.Write([]byte{0})
	h.Write(shared)
	fmt.Fprintf(h, "\x00%d", opts.CardinalityThreshold)
	if s := opts.Signing; s != nil {
		key := sha256.Sum256(s.Key)
		fmt.Fprintf(h, "\x00%s\x00%s\x00%x", s.Algorithm, s.KeyID, key)
	}
	return [32]byte(h.Sum(nil))
}

// keep drops the callees not rendered this time.
func (c *Cache) keep(rendered map[string]*callee) { c.callees = rendered }

// compile loads the policy with the operator data into a fresh OPA and
// prepares the decision, which type-checks the policy against the data's
// shape. The grants, below their own key, are data the policy only looks
// up: they cannot change what compiles.
func (c *Cache) compile(ctx context.Context, base [32]byte, shared map[string]any) error {
	if c.compiled == base {
		return nil
	}
	authz := maps.Clone(shared)
	authz["callees"] = map[string]any{}
	authz["grants"] = map[string]any{}
	if err := prepare(ctx, authzBundle("", authz), "data.envoy.authz.allow"); err != nil {
		return err
	}
	c.compiled = base
	return nil
}

// unseen is the bundle of the callees without one of their own: authz,
// the full bundle's data (root as JSON), without grants.
func (c *Cache) unseen(base [32]byte, root []byte, authz map[string]any, s *SigningOptions) (*CalleeBundle, error) {
	h := sha256.New()
	h.Write(base[:])
	h.Write(root)
	key := [32]byte(h.Sum(nil))
	if c.unseenBundle != nil && c.unseenKey == key {
		return c.unseenBundle, nil
	}
	data := maps.Clone(authz)
	data["grants"] = map[string]any{}
	sum := newDigest(root, s)
	sum.add("unseen", nil)
	b, err := sealed("", sum.revision(), data, s)
	if err != nil {
		return nil, err
	}
	c.unseenKey, c.unseenBundle = key, b
	return b, nil
}

// callee renders dst's records, or returns what the last call made of
// the same.
func (c *Cache) callee(base [32]byte, dst string, recs []aggregate.Record, opts Options) (*callee, error) {
	slices.SortFunc(recs, func(a, b aggregate.Record) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Method, b.Method), strings.Compare(a.Route, b.Route))
	})
	// Length-prefixed, so that no record (valid or not) can stand for
	// others.
	h := sha256.New()
	h.Write(base[:])
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(dst)
	var spec Spec
	if opts.Specs != nil {
		spec = c.memo(opts.Specs(dst))
	}
	if spec != nil {
		d := spec.Digest()
		h.Write(d[:])
		if spec.Strict() {
			h.Write([]byte("strict"))
		}
	}
	for _, r := range recs {
		field(r.Source)
		field(r.Method)
		field(r.Route)
		// What the backstop may widen depends on the origin.
		h.Write([]byte{byte(r.Stats.Origin)})
	}
	key := [32]byte(h.Sum(nil))
	if old := c.callees[dst]; old != nil && old.key == key {
		return old, nil
	}
	return renderCallee(key, dst, recs, spec, opts)
}

// taken is what the callee's spec takes of wildcard route rt (see
// Spec.Taken), in route order, with whole; nothing without a spec.
func taken(spec Spec, method string, rt route.Route, operation bool) ([]route.Route, bool) {
	if spec == nil || !rt.HasWildcard() {
		return nil, false
	}
	ex, whole := spec.Taken(method, rt, operation)
	ex = slices.DeleteFunc(ex, func(e route.Route) bool { return !within(e, rt) })
	if len(ex) == 0 {
		return nil, whole
	}
	slices.SortFunc(ex, func(a, b route.Route) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(ex, func(a, b route.Route) bool { return a.String() == b.String() }), whole
}

// within reports whether e may admit some of rt's requests and differs
// from rt only at its wildcards, as the policy reads what a route leaves
// out; any other route takes nothing of rt.
func within(e, rt route.Route) bool {
	if !route.Overlaps(e, rt) {
		return false
	}
	for i, s := range rt {
		if s.Wild == 0 && e[i] != s {
			return false
		}
	}
	return true
}

func renderCallee(key [32]byte, dst string, recs []aggregate.Record, spec Spec, opts Options) (*callee, error) {
	c := &callee{key: key, cover: make([]int32, len(recs)), exact: make([]bool, len(recs)), bits: make([]uint64, len(recs))}
	callers := map[string]map[string]*grant{}
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Source == recs[i].Source && recs[j].Method == recs[i].Method {
			j++
		}
		if gr := c.group(dst, recs[i:j], spec, i, opts); gr != nil {
			if callers[recs[i].Source] == nil {
				callers[recs[i].Source] = map[string]*grant{}
			}
			callers[recs[i].Source][recs[i].Method] = gr
		}
		i = j
	}
	if len(callers) == 0 {
		return c, nil
	}
	file, err := json.MarshalIndent(callers, "", "  ")
	if err != nil {
		return nil, err
	}
	name := path.Join(append(append([]string{grantsPath}, spiffeid.Segments(dst)...), calleeFile)...)
	if name != CalleeDir(dst)+"/data.json" || strings.Contains(name[len(grantsPath):len(name)-len(calleeFile)], "@") {
		// Validate keeps dot segments and '@' out of IDs; never write
		// outside grants/ or into another destination's @callers/.
		return nil, fmt.Errorf("destination %q does not map to a file below %s", dst, grantsPath)
	}
	c.file = append(file, '\n')
	c.sum = sha256.Sum256(c.file)
	return c, nil
}

// group renders the records of one caller and method, recs[0] being the
// callee's record number at, with the callee's spec (nil for none); it
// returns their grant (nil for none).
func (c *callee) group(dst string, recs []aggregate.Record, spec Spec, at int, opts Options) *grant {
	src, method := recs[0].Source, recs[0].Method
	var routes []route.Route
	var keep []bool // routes from an API spec, kept out of the backstop
	var index []int // record number of each route
	for k, r := range recs {
		c.cover[at+k] = -1
		rt, err := route.ParseKey(r.Route)
		if err != nil {
			c.skipped++
			continue
		}
		c.learned = true
		// Denied before the backstop, so that they never widen a wildcard.
		if opts.Overrides.Denies(dst, src, method, rt) {
			c.denied = append(c.denied, Rule{Destination: dst, Source: src, Method: method, Route: rt})
			continue
		}
		if !rt.HasWildcard() {
			c.bits[at+k] = aggregate.ValueBit(rt.String())
		}
		routes = append(routes, rt)
		keep = append(keep, route.Origin(r.Stats.Origin) == route.OpenAPI)
		index = append(index, at+k)
	}
	if len(routes) == 0 {
		return nil
	}
	// An operation is granted whole: the routes of its enums' other
	// values, from the spec in force.
	used := len(routes)
	for k := range used {
		if keep[k] && spec != nil {
			for _, alt := range spec.Alternatives(method, routes[k]) {
				routes = append(routes, alt)
				keep = append(keep, true)
				index = append(index, index[k])
			}
		}
	}
	generalized := route.GeneralizeKeeping(routes, keep, opts.CardinalityThreshold)
	operation := map[string]bool{}
	for i, rt := range routes {
		if keep[i] {
			operation[rt.String()] = true
		}
	}
	// The rule number of each generalized route, -1 for one denied or
	// taken whole by the spec's operations.
	ruleOf := make([]int32, len(generalized))
	gr := &grant{}
	for i, rt := range generalized {
		ruleOf[i] = -1
		if spec != nil && spec.Strict() && !(spec.Owns(method, rt) && (!rt.HasWildcard() || operation[rt.String()])) {
			// Learned before the spec, or an operation it no longer
			// has: no request of it would be learned now.
			continue
		}
		except, whole := taken(spec, method, rt, operation[rt.String()])
		if whole {
			continue
		}
		rule := Rule{Destination: dst, Source: src, Method: method, Route: rt, Except: except}
		if opts.Overrides.Denies(dst, src, method, rt) {
			c.denied = append(c.denied, rule)
			continue
		}
		ruleOf[i] = int32(len(c.rules))
		c.rules = append(c.rules, rule)
		gr.add(rt, rule.Except)
	}
	// Each record's evidence goes to the route equal to it, or else to the
	// first wildcard covering it (Generalize keeps every one covered).
	exact := make(map[string]int, len(generalized))
	for i, rt := range generalized {
		exact[rt.String()] = i
	}
	for k, rt := range routes[used:] {
		if i := ruleOf[exact[rt.String()]]; i >= 0 {
			c.alts = append(c.alts, altEvidence{rule: i, record: int32(index[used+k])})
		}
	}
	for k, rt := range routes[:used] {
		i, ok := exact[rt.String()]
		if !ok {
			i = slices.IndexFunc(generalized, func(g route.Route) bool { return g.HasWildcard() && route.Covers(g, rt) })
			if i < 0 {
				continue
			}
		}
		c.cover[index[k]], c.exact[index[k]] = ruleOf[i], ok
	}
	if gr.Paths == nil && gr.Templates == nil && gr.Operations == nil {
		return nil
	}
	gr.Templates.sort()
	gr.Operations.sort()
	return gr
}

// evidence appends, rule for rule, the merged statistics of recs, the
// records the callee was rendered from (in the same order).
func (c *callee) evidence(recs []aggregate.Record, out []Evidence) []Evidence {
	at := len(out)
	for range c.rules {
		out = append(out, Evidence{Origin: OriginBackstop})
	}
	for k, r := range recs {
		i := c.cover[k]
		if i < 0 {
			continue
		}
		e := &out[at+int(i)]
		if c.exact[k] {
			e.Origin = route.Origin(r.Stats.Origin).String()
		}
		st := r.Stats
		if c.bits[k] != 0 {
			st.Values = c.bits[k]
		}
		if e.Count == 0 {
			e.Stats = st
		} else {
			e.Stats.Merge(st)
		}
	}
	// A rule granted with an operation no record matches: the evidence of
	// the operation's uses.
	fromAlt := map[int32]bool{}
	for _, a := range c.alts {
		e := &out[at+int(a.rule)]
		if e.Count != 0 && !fromAlt[a.rule] {
			continue
		}
		st := recs[a.record].Stats
		st.Values = 0
		if !fromAlt[a.rule] {
			fromAlt[a.rule] = true
			e.Origin, e.Stats = route.OpenAPI.String(), st
		} else {
			e.Stats.Merge(st)
		}
	}
	return out
}

// calleeBundle is the callee's own bundle: the operator data, its entry in
// callees and its grants alone. Its revision hashes the same parts as the
// full bundle's.
func (c *callee) calleeBundle(id string, shared map[string]any, sharedJSON []byte, entry any, s *SigningOptions) (*CalleeBundle, error) {
	entryJSON, err := json.Marshal(entry)
	if err != nil {
		return nil, err
	}
	if c.bundle != nil && string(c.entry) == string(entryJSON) {
		return c.bundle, nil
	}
	authz := maps.Clone(shared)
	authz["callees"] = map[string]any{id: entry}
	// Its sidecar answers for this callee alone, which it knows: any other
	// callee is no unseen one to audit here. So for every request the
	// bundle is no more permissive than the full one.
	authz["unseen_audit"] = false
	grants := map[string]any{}
	sum := newDigest(sharedJSON, s)
	sum.add(id, entryJSON)
	if c.file != nil {
		insert(grants, id, json.RawMessage(c.file))
		sum.add(id, c.sum[:])
	}
	authz["grants"] = grants
	b, err := sealed(id, sum.revision(), authz, s)
	if err != nil {
		return nil, err
	}
	c.bundle, c.entry = b, entryJSON
	return b, nil
}

// Split gives the callees' own bundles and the unseen bundle of a bundle
// published before, the same as Render gave with PerCallee: they are a
// function of the full bundle's data. The exporter brings the callees'
// objects in line with the bundle in place with it when it publishes no
// new one.
func Split(tarball []byte, s *SigningOptions) (*Bundle, error) {
	b, err := bundle.NewReader(bytes.NewReader(tarball)).WithSkipBundleVerification(true).Read()
	if err != nil {
		return nil, err
	}
	authz, ok := lookup(b.Data, "envoy", "authz")
	if !ok {
		return nil, errors.New("bundle has no envoy.authz")
	}
	entries, _ := authz["callees"].(map[string]any)
	grants, _ := authz["grants"].(map[string]any)
	delete(authz, "grants")
	shared := maps.Clone(authz)
	delete(shared, "callees")
	sharedJSON, err := json.Marshal(shared)
	if err != nil {
		return nil, err
	}
	out := &Bundle{Revision: b.Manifest.Revision}
	ids := slices.Sorted(maps.Keys(entries))
	for _, id := range ids {
		if spiffeid.Validate(id) != nil {
			return nil, fmt.Errorf("callee %q is no valid SPIFFE ID", id)
		}
		c := &callee{}
		if callers, ok := lookup(grants, append(spiffeid.Segments(id), callersKey)...); ok {
			// Through the grants' own types, whose fields are in the order
			// Render writes them.
			raw, err := json.Marshal(callers)
			if err != nil {
				return nil, err
			}
			var typed map[string]map[string]*grant
			if err := json.Unmarshal(raw, &typed); err != nil {
				return nil, fmt.Errorf("callers of %s: %w", id, err)
			}
			file, err := json.MarshalIndent(typed, "", "  ")
			if err != nil {
				return nil, err
			}
			c.file = append(file, '\n')
			c.sum = sha256.Sum256(c.file)
		}
		cb, err := c.calleeBundle(id, shared, sharedJSON, entries[id], s)
		if err != nil {
			return nil, err
		}
		out.Callees = append(out.Callees, cb)
	}
	root, err := json.MarshalIndent(authz, "", "  ")
	if err != nil {
		return nil, err
	}
	if out.Unseen, err = NewCache().unseen([32]byte{}, root, authz, s); err != nil {
		return nil, err
	}
	return out, nil
}
