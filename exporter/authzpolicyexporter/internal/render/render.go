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
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
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
	// Audit renders a bundle that allows every request and marks, in its
	// object decision, those the learned policy would deny.
	Audit bool
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
	// Rules are the allow rules after generalization, in no particular
	// order; Skipped counts records that could not be rendered.
	Rules   []Rule
	Skipped int
}

// grant is what the policy reads for one (destination, source, method).
type grant struct {
	Paths     map[string]bool    `json:"paths,omitempty"`
	Templates map[string][][]any `json:"templates,omitempty"`
}

type wildcard struct {
	Type string `json:"type"`
}

// Render builds, compiles and serializes the bundle for records, which need
// not be sorted. A record with an invalid identity or route is skipped and
// counted rather than failing the whole bundle.
func Render(ctx context.Context, records []aggregate.Record, opts Options) (*Bundle, error) {
	type group struct{ dst, src, method string }
	routes := map[group][]route.Route{}
	out := &Bundle{}
	for _, r := range records {
		rt, err := route.ParseKey(r.Route)
		if err != nil || spiffeid.Validate(r.Destination) != nil || spiffeid.Validate(r.Source) != nil || !route.ValidMethod(r.Method) {
			out.Skipped++
			continue
		}
		g := group{r.Destination, r.Source, r.Method}
		routes[g] = append(routes[g], rt)
	}

	// destination -> source -> method -> grant
	byDst := map[string]map[string]map[string]*grant{}
	for g, rs := range routes {
		gr := &grant{}
		for _, rt := range route.Generalize(rs, opts.CardinalityThreshold) {
			out.Rules = append(out.Rules, Rule{Destination: g.dst, Source: g.src, Method: g.method, Route: rt})
			if !rt.HasWildcard() {
				if gr.Paths == nil {
					gr.Paths = map[string]bool{}
				}
				gr.Paths[rt.String()] = true
				continue
			}
			if gr.Templates == nil {
				gr.Templates = map[string][][]any{}
			}
			n := strconv.Itoa(len(rt))
			gr.Templates[n] = append(gr.Templates[n], templateJSON(rt))
		}
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
		if name != grantsPath+"/"+strings.Join(segs, "/")+"/"+calleeFile || strings.Contains(name[len(grantsPath):len(name)-len(calleeFile)], "@") {
			// Validate keeps dot segments and '@' out of IDs; never write
			// outside grants/ or into another destination's @callers/.
			return nil, fmt.Errorf("destination %q does not map to a file below %s", d, grantsPath)
		}
		out.Files[name] = append(file, '\n')
	}
	mode := "enforce"
	if opts.Audit {
		mode = "audit"
	}
	data := map[string]any{"envoy": map[string]any{"authz": map[string]any{"grants": grants, "mode": mode}}}
	out.Files[Root+"/data.json"] = []byte(`{"mode": "` + mode + "\"}\n")

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

func templateJSON(rt route.Route) []any {
	segs := make([]any, len(rt))
	for i, s := range rt {
		if s.Wild != 0 {
			segs[i] = wildcard{Type: s.Wild.String()}
		} else {
			segs[i] = s.Lit
		}
	}
	return segs
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
