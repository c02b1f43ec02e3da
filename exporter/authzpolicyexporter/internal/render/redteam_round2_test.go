package render

// Red-team round 2 of routes::openapi (render). The defects it found are fixed;
// their tests are TestRedteamFixed..., what held TestRedteamHolds...,
// and a limit kept as documented TestRedteamKnown...; BenchmarkRedteam...
// measure cost.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/opatest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route/openapi"
)

// rt2EnumSpec has n literal operations GET /r/k<i>/{id} (integer) and,
// after them in matching order, GET /r/{s}/{id} with an enum of 64 values:
// an API whose list of named resources has a generic enum-typed sibling.
func rt2EnumSpec(n int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nservers: [{url: /api}]\npaths:\n")
	var vals []string
	for i := range 64 {
		vals = append(vals, fmt.Sprintf("v%d", i))
	}
	fmt.Fprintf(&b, "  /r/{s}/{id}:\n    get:\n      parameters: [{name: s, in: path, required: true, schema: {type: string, enum: [%s]}}, {name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {\"200\": {description: ok}}\n", strings.Join(vals, ", "))
	for k := range n {
		fmt.Fprintf(&b, "  /r/k%d/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]\n      responses: {\"200\": {description: ok}}\n", k)
	}
	return b.String()
}

func rt2EnumRecords(spec *openapi.Spec, callers int) []aggregate.Record {
	var recs []aggregate.Record
	for c := range callers {
		recs = append(recs, rtoLearn(spec, fmt.Sprintf("spiffe://example.org/ns/c/sa/c%d", c), "/api/r/v0/7")...)
	}
	return rtoRecords(recs)
}

// BenchmarkRedteamRenderEnumAfterManyOperations renders a callee whose
// callers each used the enum operation once, with n operations of the same
// shape before it: each record's 63 alternatives each walk the n
// operations (Alternatives, then Taken for each alternative's route).
func BenchmarkRedteamRenderEnumAfterManyOperations(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		spec, err := openapi.Parse([]byte(rt2EnumSpec(n)), "enum")
		require.NoError(b, err)
		for _, callers := range []int{1, 50} {
			recs := rt2EnumRecords(spec, callers)
			b.Run(fmt.Sprintf("operations=%d/callers=%d", n, callers), func(b *testing.B) {
				for b.Loop() {
					_, err := Render(context.Background(), recs, rtoOptions(spec))
					require.NoError(b, err)
				}
			})
		}
	}
}

// rt2SubsetSpec has a fallback GET /x/{p0}/.../{p<k-1>} (strings) and,
// before it, for each set of its positions but none and all, an operation
// with the literal "l" there and string parameters elsewhere: 2^k-2
// operations, each a shape of its own, that leave out of the fallback
// requests with literals at a different set of its wildcards.
func rt2SubsetSpec(k int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nservers: [{url: /api}]\npaths:\n")
	op := func(lits int) {
		var path strings.Builder
		var params []string
		path.WriteString("/x")
		for i := range k {
			if lits&(1<<i) != 0 {
				path.WriteString("/l")
				continue
			}
			fmt.Fprintf(&path, "/{p%d}", i)
			params = append(params, fmt.Sprintf("{name: p%d, in: path, required: true, schema: {type: string}}", i))
		}
		fmt.Fprintf(&b, "  %s:\n    get:\n      parameters: [%s]\n      responses: {\"200\": {description: ok}}\n", path.String(), strings.Join(params, ", "))
	}
	for lits := 0; lits < 1<<k-1; lits++ {
		op(lits)
	}
	return b.String()
}

func rt2SubsetPath(k int, v string) string {
	return "/api/x" + strings.Repeat("/"+v, k)
}

// BenchmarkRedteamDecisionExceptGroups: a caller of the fallback of
// rt2SubsetSpec(k), allowed, for k of 3 (6 operations) and 11 (2046).
func BenchmarkRedteamDecisionExceptGroups(b *testing.B) {
	ctx := context.Background()
	src := "spiffe://example.org/ns/c/sa/c0"
	for _, k := range []int{3, 7, 11} {
		spec, err := openapi.Parse([]byte(rt2SubsetSpec(k)), "subsets")
		require.NoError(b, err)
		out, err := Render(ctx, rtoRecords(rtoLearn(spec, src, rt2SubsetPath(k, "v"))), rtoOptions(spec))
		require.NoError(b, err)
		bb, err := bundle.NewReader(bytes.NewReader(out.Tarball)).Read()
		require.NoError(b, err)
		pq, err := rego.New(rego.Query(opatest.Query), rego.ParsedBundle("authz", &bb)).PrepareForEval(ctx)
		require.NoError(b, err)
		in := envoyInput(rtoShop, src, "GET", rt2SubsetPath(k, "v"), true)
		b.Run(fmt.Sprintf("operations=%d/allow", len(spec.Operations)), func(b *testing.B) { benchCheck(b, pq, in, true) })
	}
}

// Two documents of the same operations, in another order and layout, give
// the same bundle bytes for the same records (the digest differs, which
// only re-renders); a shuffled record order too.
func TestRedteamHoldsSameOperationsOtherDocumentSameBytes(t *testing.T) {
	a, err := openapi.Parse([]byte(rtoOverlap), "a")
	require.NoError(t, err)
	// The same paths, reversed, as JSON-ish flow YAML.
	lines := strings.Split(strings.TrimSpace(rtoOverlap), "\n")
	head, items := lines[:4], lines[4:]
	var blocks [][]string
	for _, l := range items {
		if strings.HasPrefix(l, "  /") {
			blocks = append(blocks, nil)
		}
		blocks[len(blocks)-1] = append(blocks[len(blocks)-1], l)
	}
	var rev []string
	rev = append(rev, head...)
	for i := len(blocks) - 1; i >= 0; i-- {
		rev = append(rev, blocks[i]...)
	}
	b, err := openapi.Parse([]byte(strings.Join(rev, "\n")+"\n# other\n"), "b")
	require.NoError(t, err)
	require.NotEqual(t, a.Digest(), b.Digest())
	require.Len(t, b.Operations, len(a.Operations))
	var recs []aggregate.Record
	for i, p := range rtoProbes() {
		recs = append(recs, rtoLearn(a, fmt.Sprintf("spiffe://example.org/ns/c/sa/c%d", i%3), p)...)
	}
	recs = rtoRecords(recs)
	cache := NewCache()
	optsA, optsB := rtoOptions(a), rtoOptions(b)
	optsA.Cache, optsB.Cache = cache, cache
	ba, err := Render(context.Background(), recs, optsA)
	require.NoError(t, err)
	bb, err := Render(context.Background(), recs, optsB)
	require.NoError(t, err)
	assert.Equal(t, ba.Revision, bb.Revision)
	assert.True(t, bytes.Equal(ba.Tarball, bb.Tarball))
}
