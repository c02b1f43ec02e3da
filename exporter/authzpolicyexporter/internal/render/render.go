// Package render turns the aggregate into an OPA bundle: a fixed Rego v1
// policy plus the learned grants as data, laid out for keyed lookups.
package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
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
	// PerCallee also renders each known callee's own bundle
	// (Bundle.Callees).
	PerCallee bool
	// Specs, when set, gives the API spec of a callee (nil for none): a
	// wildcard route leaves out what the spec's operations take of it
	// (Rule.Except), its own operation's route what those before it take.
	Specs func(dst string) Spec
	// Cache, when set, keeps each callee's rendering for the next call.
	Cache *Cache
	// Signing, when set, signs the bundle: the tarball and Files gain
	// /.signatures.json. RS256 and HS256 signatures are deterministic, so
	// the same aggregate and key still give the same bytes; ES256
	// signatures differ from one render to the next, but the revision,
	// which never depends on the signature, stays the same.
	Signing *SigningOptions
}

// Spec is a callee's API spec as rendering reads it (openapi.Spec).
type Spec interface {
	// Strict says that requests of no operation are refused: a route
	// that is none of the spec's (Owns) grants nothing.
	Strict() bool
	// Owns reports whether rt is a route of the spec's: a literal route
	// an operation admits, a wildcard route an operation grants.
	Owns(method string, rt route.Route) bool
	// Taken is what the spec's operations of method take of wildcard
	// route rt, a route of an operation when operation is set: the routes
	// of the requests they have (see openapi.Spec.Taken).
	Taken(method string, rt route.Route, operation bool) (taken []route.Route, whole bool)
	// Alternatives are the other routes the operation granting rt grants
	// with it: the other values of its enums (see
	// openapi.Spec.Alternatives).
	Alternatives(method string, rt route.Route) []route.Route
	// Digest identifies the spec's content.
	Digest() [32]byte
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
	// Callees are the callees' own bundles (Options.PerCallee), by ID.
	// Unseen (no ID) is the bundle for a callee that has none yet: the
	// full bundle without grants, which decides for a callee it does not
	// know as the full bundle does, and for any other never more
	// permissively.
	Callees []*CalleeBundle
	Unseen  *CalleeBundle
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
// Templates, and those that leave routes out (Rule.Except) in Operations,
// laid out alike, so that a grant without them costs a denied request one
// lookup more.
type grant struct {
	Paths      map[string]bool `json:"paths,omitempty"`
	Templates  templates       `json:"templates,omitempty"`
	Operations templates       `json:"operations,omitempty"`
}

type wildcard struct {
	Type string `json:"type"`
}

// Render builds, compiles and serializes the bundle for records, which need
// not be sorted. A record with an invalid identity or route is skipped and
// counted rather than failing the whole bundle. With opts.Cache, a callee
// whose records, mode and operator data are those of the last call is not
// rendered again.
func Render(ctx context.Context, records []aggregate.Record, opts Options) (*Bundle, error) {
	out := &Bundle{}
	byDst := map[string][]aggregate.Record{}
	for _, r := range records {
		if spiffeid.Validate(r.Destination) != nil || spiffeid.Validate(r.Source) != nil || !route.ValidMethod(r.Method) {
			out.Skipped++
			continue
		}
		byDst[r.Destination] = append(byDst[r.Destination], r)
	}
	shared := sharedData(opts)
	sharedJSON, err := json.Marshal(shared)
	if err != nil {
		return nil, err
	}
	cache := opts.Cache
	if cache == nil {
		cache = NewCache()
	}
	cache.specs = map[specKey]*memoSpec{}
	defer func() { cache.specs = nil }()
	base := cache.base(sharedJSON, opts)

	// Every callee with records, then those known without any: a callee
	// whose grants all expired still gets its mode (and, per callee, a
	// bundle that denies or audits it).
	rendered := make(map[string]*callee, len(byDst)+len(opts.Callees))
	learned := map[string]bool{}
	for dst, recs := range byDst {
		c, err := cache.callee(base, dst, recs, opts)
		if err != nil {
			return nil, err
		}
		out.Skipped += c.skipped
		if c.learned {
			learned[dst] = true
		}
		rendered[dst] = c
	}
	entries := calleeEntries(opts, learned)
	dsts := make([]string, 0, len(entries))
	for d := range entries {
		dsts = append(dsts, d)
	}
	slices.Sort(dsts)

	grants := map[string]any{}
	out.Files = map[string][]byte{}
	sum := newDigest(sharedJSON, opts.Signing)
	for _, d := range dsts {
		c := rendered[d]
		if c == nil {
			if c, err = cache.callee(base, d, nil, opts); err != nil {
				return nil, err
			}
			rendered[d] = c
		}
		out.Rules = append(out.Rules, c.rules...)
		out.Evidence = c.evidence(byDst[d], out.Evidence)
		out.Denied = append(out.Denied, c.denied...)
		if opts.PerCallee {
			cb, err := c.calleeBundle(d, shared, sharedJSON, entries[d], opts.Signing)
			if err != nil {
				return nil, err
			}
			out.Callees = append(out.Callees, cb)
		}
		if c.file == nil {
			continue
		}
		insert(grants, d, json.RawMessage(c.file))
		out.Files[CalleeDir(d)+"/data.json"] = c.file
		sum.add(d, c.sum[:])
	}
	cache.keep(rendered)

	authz := maps.Clone(shared)
	authz["callees"] = entries
	root, err := json.MarshalIndent(authz, "", "  ")
	if err != nil {
		return nil, err
	}
	out.Files[Root+"/data.json"] = append(root, '\n')
	sum.add("", root)
	out.Revision = sum.revision()
	if opts.PerCallee {
		if out.Unseen, err = cache.unseen(base, root, authz, opts.Signing); err != nil {
			return nil, err
		}
	}
	authz["grants"] = grants

	b := authzBundle(out.Revision, authz)
	if err := cache.compile(ctx, base, shared); err != nil {
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
	if out.Tarball, err = write(b); err != nil {
		return nil, err
	}
	return out, nil
}

// insert puts a callee's callers object at its place in the grants tree.
func insert(grants map[string]any, id string, callers any) {
	node := grants
	for _, s := range spiffeid.Segments(id) {
		next, ok := node[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			node[s] = next
		}
		node = next
	}
	node[callersKey] = callers
}

// seal signs b when s is set and writes it.
func seal(b *bundle.Bundle, s *SigningOptions) ([]byte, error) {
	if s != nil {
		if _, err := signTarball(b, s); err != nil {
			return nil, err
		}
	}
	return write(b)
}

func write(b *bundle.Bundle) ([]byte, error) {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// digest is a bundle's revision: a hash of the policy, the operator data
// and each callee's grants, in a fixed order, so that the same content
// always gives the same revision and a callee's grants are hashed once,
// when they are rendered.
type digest struct{ h hash.Hash }

func newDigest(shared []byte, s *SigningOptions) *digest {
	d := &digest{sha256.New()}
	d.add("", Policy)
	d.add("", shared)
	if s != nil {
		// A new key or key id must reach stores that skip unchanged
		// revisions; the signature itself (ES256 varies) stays out.
		key := sha256.Sum256(s.Key)
		d.add(s.Algorithm+" "+s.KeyID, key[:])
	}
	return d
}

// add writes a length-prefixed name and value, so that no two sequences
// of parts hash alike.
func (d *digest) add(name string, value []byte) {
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], uint64(len(name)))
	binary.BigEndian.PutUint64(n[8:], uint64(len(value)))
	d.h.Write(n[:])
	d.h.Write([]byte(name))
	d.h.Write(value)
}

func (d *digest) revision() string { return hex.EncodeToString(d.h.Sum(nil)[:16]) }

// add grants rt less except (see Rule.Except): a literal route is a path
// looked up whole, a route with wildcards a template listed by its number
// of segments.
func (g *grant) add(rt route.Route, except []route.Route) {
	if !rt.HasWildcard() {
		if g.Paths == nil {
			g.Paths = map[string]bool{}
		}
		g.Paths[rt.String()] = true
		return
	}
	t := &g.Templates
	if len(except) > 0 {
		t = &g.Operations
	}
	if *t == nil {
		*t = templates{}
	}
	t.add(rt, except)
}

// assemble lays out a bundle of one module and its data, the module below
// root, for writing; its module is not parsed (see prepare).
func assemble(revision, root, modulePath string, module []byte, data map[string]any) *bundle.Bundle {
	regoVersion := 1
	roots := []string{root}
	return &bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &roots, RegoVersion: &regoVersion},
		Data:     data,
		Modules:  []bundle.ModuleFile{{URL: "/" + modulePath, Path: "/" + modulePath, Raw: module}},
	}
}

// authzBundle lays out a bundle of the policy with authz as
// data.envoy.authz.
func authzBundle(revision string, authz map[string]any) *bundle.Bundle {
	return assemble(revision, Root, policyPath, Policy, map[string]any{"envoy": map[string]any{"authz": authz}})
}

// prepare loads b into a fresh OPA and prepares query, which type-checks
// b's module against the data's shape. b itself is left unparsed.
func prepare(ctx context.Context, b *bundle.Bundle, query string) error {
	m := b.Modules[0]
	module, err := ast.ParseModuleWithOpts(m.Path[1:], string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		return err
	}
	parsed := *b
	parsed.Modules = []bundle.ModuleFile{m}
	parsed.Modules[0].Parsed = module
	_, err = rego.New(rego.Query(query), rego.ParsedBundle("bundle", &parsed), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(ctx)
	return err
}

// sealed is a bundle of the policy with authz as data, signed with s when
// set and written, as a callee's own bundle (or, without an ID, the
// unseen callees').
func sealed(id, revision string, authz map[string]any, s *SigningOptions) (*CalleeBundle, error) {
	tarball, err := seal(authzBundle(revision, authz), s)
	if err != nil {
		return nil, err
	}
	return &CalleeBundle{ID: id, Revision: revision, Tarball: tarball}, nil
}
