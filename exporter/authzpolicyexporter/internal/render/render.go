// Package render turns the aggregate into an OPA bundle: a fixed Rego v1
// policy plus the learned grants as data, laid out for keyed lookups.
package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

// Policy is the Rego module every bundle carries, unchanged.
//
//go:embed policy.rego
var Policy []byte

const (
	// Root is the bundle's only root; OPA-Envoy's default decision is
	// data.envoy.authz.allow.
	Root       = "envoy/authz"
	policyPath = Root + "/policy.rego"
	grantsPath = Root + "/grants"
	// callersKey holds a destination's callers. It cannot clash with a
	// SPIFFE path segment, which never contains '@'.
	callersKey = "@callers"
	// CallersDir is the directory, below a destination's own in the
	// unpacked bundle (Files), that holds that destination's files and
	// nothing else.
	CallersDir = callersKey
	// calleeFile is a destination's callers in the unpacked bundle: the
	// directory supplies the callersKey, so the file holds the callers
	// object itself.
	calleeFile = CallersDir + "/data.json"
)

// Options tune rendering.
type Options struct {
	// CardinalityThreshold is route.Generalize's threshold.
	CardinalityThreshold int
	// Callees are the modes of the callees the bundle knows, with grants
	// or without: a callee whose grants all expired is denied (or
	// audited), never taken for an unseen one.
	Callees map[string]lifecycle.Mode
	// UnseenCallees is what the policy does for a callee the bundle does
	// not know: "audit", or "deny" (the default). Only a callee Envoy
	// itself names, within TrustDomains when set, can be unseen.
	UnseenCallees string
	// ModeRules are the operator's modes, which the policy applies to
	// unseen callees (Callees holds the known ones' already).
	ModeRules    []lifecycle.Rule
	TrustDomains []string
	// Overrides are the operator's allow and deny rules. Learned routes a
	// deny rule covers entirely are left out (see Bundle.Denied); every
	// deny rule is also checked by the policy at each decision, so that a
	// learned wildcard never reopens what it denies.
	Overrides *overrides.Set
	// Signing, when set, signs the bundle: the tarball and Files gain
	// /.signatures.json. RS256 and HS256 signatures are deterministic, so
	// the same aggregate and key still give the same bytes; ES256
	// signatures differ from one render to the next, but the revision,
	// which never depends on the signature, stays the same.
	Signing *SigningOptions
}

// Bundle is a rendered policy.
type Bundle struct {
	// Revision is a hash of the content: the same aggregate gives the same
	// revision and the same bytes.
	Revision string
	// Tarball is bundle.tar.gz as written by OPA's bundle package.
	Tarball []byte
	// Files is the same bundle unpacked, for reviewing changes in version
	// control: each destination's callers are in
	// grants/<trust domain>/<segments...>/@callers/data.json. Below grants/
	// a directory holds only segment directories and at most one @callers
	// directory, which holds only files, so no set of valid SPIFFE IDs
	// makes a file's path another's directory. Paths are slash-separated.
	// A signed bundle's Files carry their own .signatures.json (see
	// SigningOptions.FilesDir).
	Files map[string][]byte
	// Review are files written only beside the unpacked bundle (evidence,
	// the change log), never into the bundle; the exporter fills them in.
	Review map[string][]byte
	// Rules are the learned allow rules after generalization, in no
	// particular order, and Evidence, index for index, what each was
	// learned from.
	Rules    []Rule
	Evidence []Evidence
	// Denied are learned routes left out because a deny rule covers them.
	Denied []Rule
	// Skipped counts records that could not be rendered.
	Skipped int
}

// Evidence is what a rule was learned from: its origin (a route.Origin's
// name, or OriginBackstop) and the merged statistics of what it covers.
type Evidence struct {
	Origin string
	aggregate.Stats
}

// OriginBackstop is the origin of a wildcard the cardinality backstop made.
const OriginBackstop = "backstop"

// CalleeDir is the directory of a callee's files in Files and Review.
func CalleeDir(id string) string {
	return grantsPath + "/" + strings.Join(spiffeid.Segments(id), "/") + "/" + CallersDir
}

// grant is what the policy reads for one (destination, source, method):
// literal routes as keys of Paths, one lookup; wildcard routes in
// Templates.
type grant struct {
	Paths     map[string]bool `json:"paths,omitempty"`
	Templates templates       `json:"templates,omitempty"`
}

type wildcard struct {
	Type string `json:"type"`
}

// input is one record's route for generalization.
type input struct {
	route route.Route
	stats aggregate.Stats
}

// Render builds, compiles and serializes the bundle for records, which need
// not be sorted. A record with an invalid identity or route is skipped and
// counted rather than failing the whole bundle.
func Render(ctx context.Context, records []aggregate.Record, opts Options) (*Bundle, error) {
	type group struct{ dst, src, method string }
	inputs := map[group][]input{}
	// learned are the callees of the records: known to the bundle, with
	// grants or with their routes all denied.
	learned := map[string]bool{}
	out := &Bundle{}
	for _, r := range records {
		rt, err := route.ParseKey(r.Route)
		if err != nil || spiffeid.Validate(r.Destination) != nil || spiffeid.Validate(r.Source) != nil || !route.ValidMethod(r.Method) {
			out.Skipped++
			continue
		}
		learned[r.Destination] = true
		// Denied before the backstop, so that they never widen a wildcard.
		if opts.Overrides.Denies(r.Destination, r.Source, r.Method, rt) {
			out.Denied = append(out.Denied, Rule{Destination: r.Destination, Source: r.Source, Method: r.Method, Route: rt})
			continue
		}
		g := group{r.Destination, r.Source, r.Method}
		inputs[g] = append(inputs[g], input{rt, r.Stats})
	}

	// destination -> source -> method -> grant
	byDst := map[string]map[string]map[string]*grant{}
	for g, in := range inputs {
		routes := make([]route.Route, len(in))
		for i := range in {
			routes[i] = in[i].route
		}
		gr := &grant{}
		generalized := route.Generalize(routes, opts.CardinalityThreshold)
		evidence := merge(generalized, in)
		for i, rt := range generalized {
			rule := Rule{Destination: g.dst, Source: g.src, Method: g.method, Route: rt}
			if opts.Overrides.Denies(g.dst, g.src, g.method, rt) {
				out.Denied = append(out.Denied, rule)
				continue
			}
			out.Rules = append(out.Rules, rule)
			out.Evidence = append(out.Evidence, evidence[i])
			if !rt.HasWildcard() {
				if gr.Paths == nil {
					gr.Paths = map[string]bool{}
				}
				gr.Paths[rt.String()] = true
				continue
			}
			if gr.Templates == nil {
				gr.Templates = templates{}
			}
			gr.Templates.add(rt)
		}
		if gr.Paths == nil && gr.Templates == nil {
			continue
		}
		gr.Templates.sort()
		if byDst[g.dst] == nil {
			byDst[g.dst] = map[string]map[string]*grant{}
		}
		if byDst[g.dst][g.src] == nil {
			byDst[g.dst][g.src] = map[string]*grant{}
		}
		byDst[g.dst][g.src][g.method] = gr
	}

	// The data tree, and one review file per destination.
	grants := map[string]any{}
	out.Files = map[string][]byte{}
	dsts := make([]string, 0, len(byDst))
	for d := range byDst {
		dsts = append(dsts, d)
	}
	slices.Sort(dsts)
	for _, d := range dsts {
		segs := spiffeid.Segments(d)
		node := grants
		for _, s := range segs {
			next, ok := node[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[s] = next
			}
			node = next
		}
		node[callersKey] = byDst[d]
		file, err := json.MarshalIndent(byDst[d], "", "  ")
		if err != nil {
			return nil, err
		}
		name := path.Join(append(append([]string{grantsPath}, segs...), calleeFile)...)
		if name != CalleeDir(d)+"/data.json" || strings.Contains(name[len(grantsPath):len(name)-len(calleeFile)], "@") {
			// Validate keeps dot segments and '@' out of IDs; never write
			// outside grants/ or into another destination's @callers/.
			return nil, fmt.Errorf("destination %q does not map to a file below %s", d, grantsPath)
		}
		out.Files[name] = append(file, '\n')
	}
	authz := operatorData(opts, learned)
	root, err := json.MarshalIndent(authz, "", "  ")
	if err != nil {
		return nil, err
	}
	out.Files[Root+"/data.json"] = append(root, '\n')
	authz["grants"] = grants
	data := map[string]any{"envoy": map[string]any{"authz": authz}}

	canonical, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.New()
	sum.Write(Policy)
	sum.Write([]byte{0})
	sum.Write(canonical)
	if opts.Signing != nil {
		// A new key or key id must reach stores that skip unchanged
		// revisions; the signature itself (ES256 varies) stays out.
		key := sha256.Sum256(opts.Signing.Key)
		sum.Write([]byte{0})
		sum.Write([]byte(opts.Signing.Algorithm + " " + opts.Signing.KeyID + " "))
		sum.Write(key[:])
	}
	out.Revision = hex.EncodeToString(sum.Sum(nil)[:16])

	b, err := assemble(out.Revision, data)
	if err != nil {
		return nil, err
	}
	if err := compile(ctx, b); err != nil {
		return nil, fmt.Errorf("rendered bundle does not compile: %w", err)
	}
	manifest, err := json.MarshalIndent(b.Manifest, "", "  ")
	if err != nil {
		return nil, err
	}
	out.Files[bundle.ManifestExt] = append(manifest, '\n')
	out.Files[policyPath] = Policy
	if opts.Signing != nil {
		// After the revision, which never depends on the signature, and
		// before writing, so that the tarball carries /.signatures.json.
		if err := sign(b, out.Files, opts.Signing); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		return nil, err
	}
	out.Tarball = buf.Bytes()
	return out, nil
}

// merge returns, for each generalized route, the evidence of the inputs it
// covers. An input is counted once: by the route equal to it, or else by
// the first wildcard covering it.
func merge(generalized []route.Route, in []input) []Evidence {
	out := make([]Evidence, len(generalized))
	index := make(map[string]int, len(generalized))
	for i, rt := range generalized {
		index[rt.String()] = i
		out[i].Origin = OriginBackstop
	}
	for _, x := range in {
		i, exact := index[x.route.String()]
		if !exact {
			i = slices.IndexFunc(generalized, func(g route.Route) bool { return g.HasWildcard() && route.Covers(g, x.route) })
			if i < 0 {
				continue // Generalize keeps every input covered
			}
		}
		e := &out[i]
		if exact {
			e.Origin = route.Origin(x.stats.Origin).String()
		}
		st := x.stats
		if !x.route.HasWildcard() {
			st.Values = aggregate.ValueBit(x.route.String())
		}
		if e.Count == 0 {
			e.Stats = st
		} else {
			e.Stats.Merge(st)
		}
	}
	return out
}

func assemble(revision string, data map[string]any) (*bundle.Bundle, error) {
	module, err := ast.ParseModuleWithOpts(policyPath, string(Policy), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return nil, err
	}
	regoVersion := 1
	roots := []string{Root}
	return &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &roots, RegoVersion: &regoVersion},
		Data:     data,
		Modules:  []bundle.ModuleFile{{URL: "/" + policyPath, Path: "/" + policyPath, Raw: Policy, Parsed: module}},
	}, nil
}

// compile loads the bundle into a fresh OPA and prepares the decision, which
// type-checks the policy against the data it will see.
func compile(ctx context.Context, b *bundle.Bundle) error {
	_, err := rego.New(
		rego.Query("data.envoy.authz.allow"),
		rego.ParsedBundle("authz", b),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(ctx)
	return err
}
