package render

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

func perCallee(t testing.TB) Options {
	opts := meshOptions(t)
	opts.PerCallee = true
	return opts
}

func byID(b *Bundle) map[string]*CalleeBundle {
	out := map[string]*CalleeBundle{}
	for _, c := range b.Callees {
		out[c.ID] = c
	}
	return out
}

// Every callee the full bundle knows gets its own, with or without grants,
// in the order of their IDs.
func TestCalleeBundlesForEveryKnownCallee(t *testing.T) {
	b := renderOpts(t, meshRecords(), perCallee(t))
	ids := make([]string, len(b.Callees))
	for i, c := range b.Callees {
		ids[i] = c.ID
	}
	assert.Equal(t, []string{balances, payments, vault, cart, legacy}, ids)
	assert.True(t, slices.IsSorted(ids))
	assert.Empty(t, renderOpts(t, meshRecords(), meshOptions(t)).Callees, "only with PerCallee")
}

// A callee's bundle holds its grants and its entry alone, and the same
// policy.
func TestCalleeBundleHoldsOnlyItsCallee(t *testing.T) {
	full := renderOpts(t, meshRecords(), perCallee(t))
	for _, c := range full.Callees {
		t.Run(c.ID, func(t *testing.T) {
			p, err := Read(c.Tarball)
			require.NoError(t, err)
			assert.Equal(t, c.Revision, p.Revision)
			assert.Equal(t, map[string]lifecycle.Mode{c.ID: perCallee(t).Callees[c.ID]}, p.Modes)
			var want []string
			for _, r := range full.Rules {
				if r.Destination == c.ID {
					want = append(want, r.Key())
				}
			}
			var got []string
			for _, r := range p.Rules {
				got = append(got, r.Key())
			}
			assert.ElementsMatch(t, want, got)
			_, files := opatest.Untar(t, c.Tarball)
			assert.Equal(t, string(Policy), string(files["/"+policyPath]))
		})
	}
}

// allows reports whether OPA-Envoy lets a request through.
func allows(o outcome) bool { return o != denied }

// For requests to its callee a callee's bundle decides as the full bundle
// does; for any other request it is never more permissive, so a sidecar
// given another callee's bundle by mistake fails closed.
func TestCalleeBundlesAgreeWithFull(t *testing.T) {
	b := renderOpts(t, meshRecords(), perCallee(t))
	full := opatest.Load(t, b.Tarball)
	own := byID(b)
	policies := map[string]*opatest.Policy{}
	for id, c := range own {
		policies[id] = opatest.Load(t, c.Tarball)
	}
	for _, tt := range meshCases() {
		t.Run(tt.name, func(t *testing.T) {
			want := outcomeOf(t, full, tt.req)
			require.Equal(t, tt.want, want)
			dst := tt.req.DestinationPrincipal
			if dst == "" {
				dst = tt.req.Destination
			}
			if p := policies[dst]; p != nil {
				assert.Equal(t, want, outcomeOf(t, p, tt.req), "its callee's own bundle")
			}
			for id, p := range policies {
				if allows(outcomeOf(t, p, tt.req)) {
					assert.True(t, allows(want), "%s's bundle allows what the full bundle denies", id)
				}
			}
		})
	}
}

// The same input gives the same bundles; a callee whose records changed
// gets a new revision and the others keep theirs, with or without a cache,
// and a cached render is byte for byte an uncached one.
func TestCalleeBundlesIncremental(t *testing.T) {
	ctx := context.Background()
	cache := NewCache()
	opts := perCallee(t)
	opts.Cache = cache
	first, err := Render(ctx, meshRecords(), opts)
	require.NoError(t, err)
	again, err := Render(ctx, meshRecords(), opts)
	require.NoError(t, err)
	assert.Equal(t, first.Revision, again.Revision)
	assert.Equal(t, first.Tarball, again.Tarball)
	for i := range first.Callees {
		assert.Same(t, first.Callees[i], again.Callees[i], "an unchanged callee is not rendered again")
	}

	grown := append(meshRecords(), rec(payments, web, "GET", "/payments/{uuid}"))
	cached, err := Render(ctx, grown, opts)
	require.NoError(t, err)
	fresh := renderOpts(t, grown, perCallee(t))
	assert.Equal(t, fresh.Revision, cached.Revision)
	assert.Equal(t, fresh.Tarball, cached.Tarball)
	assert.Equal(t, fresh.Files, cached.Files)
	assert.ElementsMatch(t, fresh.Rules, cached.Rules)
	require.Len(t, cached.Callees, len(first.Callees))
	for i, c := range cached.Callees {
		assert.Equal(t, fresh.Callees[i].Tarball, c.Tarball)
		if c.ID == payments {
			assert.NotEqual(t, first.Callees[i].Revision, c.Revision)
			continue
		}
		assert.Same(t, first.Callees[i], c, c.ID)
	}

	// A new mode is a new bundle for that callee alone.
	opts.Callees = map[string]lifecycle.Mode{}
	for id, m := range perCallee(t).Callees {
		opts.Callees[id] = m
	}
	opts.Callees[cart] = lifecycle.Enforce
	moved, err := Render(ctx, grown, opts)
	require.NoError(t, err)
	for i, c := range moved.Callees {
		assert.Equal(t, c.ID == cart, c.Revision != cached.Callees[i].Revision, c.ID)
	}
	p := opatest.Load(t, byID(moved)[cart].Tarball)
	assert.Equal(t, allowed, outcomeOf(t, p, mtls(cart, web, "GET", "/cart/7")))
	assert.Equal(t, denied, outcomeOf(t, p, mtls(cart, web, "GET", "/cart/7/secret")))

	// Operator data changes every callee's bundle.
	opts.UnseenCallees = UnseenDeny
	denying, err := Render(ctx, grown, opts)
	require.NoError(t, err)
	for i, c := range denying.Callees {
		assert.NotEqual(t, moved.Callees[i].Revision, c.Revision, c.ID)
	}
}

// A callee's bundle is signed as the full one is.
func TestCalleeBundleSigned(t *testing.T) {
	k := newRSAKey(t)
	opts := perCallee(t)
	opts.Signing = k.signing("authz")
	b := renderOpts(t, meshRecords(), opts)
	for _, c := range b.Callees {
		loaded, err := readVerified(c.Tarball, k.verification("authz"))
		require.NoError(t, err, c.ID)
		assert.Equal(t, c.Revision, loaded.Manifest.Revision)
	}
	unsigned := byID(renderOpts(t, meshRecords(), perCallee(t)))
	assert.NotEqual(t, unsigned[balances].Revision, byID(b)[balances].Revision)
}

// The callees' bundles are a function of the full bundle: split from a
// published tarball they are Render's, byte for byte.
func TestSplitMatchesRender(t *testing.T) {
	k := newRSAKey(t)
	for name, s := range map[string]*SigningOptions{"unsigned": nil, "RS256": k.signing("authz")} {
		t.Run(name, func(t *testing.T) {
			opts := perCallee(t)
			opts.Signing = s
			b := renderOpts(t, meshRecords(), opts)
			split, err := Split(b.Tarball, s)
			require.NoError(t, err)
			require.Len(t, split.Callees, len(b.Callees))
			for i, c := range b.Callees {
				assert.Equal(t, c.ID, split.Callees[i].ID)
				assert.Equal(t, c.Revision, split.Callees[i].Revision, c.ID)
				assert.True(t, bytes.Equal(c.Tarball, split.Callees[i].Tarball), c.ID)
			}
			assert.Equal(t, b.Unseen.Revision, split.Unseen.Revision)
			assert.True(t, bytes.Equal(b.Unseen.Tarball, split.Unseen.Tarball))
		})
	}
	_, err := Split([]byte("not a bundle"), nil)
	assert.Error(t, err)
}
