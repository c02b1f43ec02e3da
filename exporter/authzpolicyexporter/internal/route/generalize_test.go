package route

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func keys(tb testing.TB, ks ...string) []Route {
	tb.Helper()
	out := make([]Route, len(ks))
	for i, k := range ks {
		r, err := ParseKey(k)
		require.NoError(tb, err, k)
		out[i] = r
	}
	return out
}

func strs(rs []Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

var names = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj"}

func under(format string, values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = fmt.Sprintf(format, v)
	}
	return out
}

func TestGeneralize(t *testing.T) {
	nums := []string{"0", "1", "22", "333", "4444", "5", "6", "7", "8", "9"}
	tests := []struct {
		name      string
		in        []string
		threshold int
		want      []string
	}{
		{
			name:      "below threshold nothing collapses",
			in:        under("/users/%s/profile", names[:9]),
			threshold: 10,
			want:      sorted(under("/users/%s/profile", names[:9])),
		},
		{
			name:      "at threshold names become one token",
			in:        under("/users/%s/profile", names[:10]),
			threshold: 10,
			want:      []string{"/users/{token}/profile"},
		},
		{
			name: "a continuation needs threshold values of its own",
			in: append(append(under("/users/%s/profile", names[:5]),
				under("/users/%s/settings", names[5:10])...),
				"/users/alice", "/users/bob/profile/photo"),
			threshold: 5,
			want:      []string{"/users/alice", "/users/bob/profile/photo", "/users/{token}/profile", "/users/{token}/settings"},
		},
		{
			name:      "one sensitive route does not spread to the siblings",
			in:        append(under("/users/%s/profile", names[:9]), "/users/root/reset-password", "/users/root/profile"),
			threshold: 10,
			want:      []string{"/users/root/reset-password", "/users/{token}/profile"},
		},
		{
			name:      "numbers become int",
			in:        under("/n/%s", nums),
			threshold: 10,
			want:      []string{"/n/{int}"},
		},
		{
			name:      "int and hex join to hex",
			in:        under("/n/%s", append(slices.Clone(nums[:5]), "abc1", "d2ef", "ace3")),
			threshold: 8,
			want:      []string{"/n/{hex}"},
		},
		{
			name:      "int and id join to id",
			in:        under("/n/%s", append(slices.Clone(nums[:5]), "x1", "y2", "z-3")),
			threshold: 8,
			want:      []string{"/n/{id}"},
		},
		{
			name:      "uuids",
			in:        under("/n/%s", []string{"550e8400-e29b-41d4-a716-446655440000", "123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000"}),
			threshold: 3,
			want:      []string{"/n/{uuid}"},
		},
		{
			name:      "uuid and int join to token",
			in:        under("/n/%s", []string{"550e8400-e29b-41d4-a716-446655440000", "1", "2"}),
			threshold: 3,
			want:      []string{"/n/{token}"},
		},
		{
			name:      "collapsed literals merge into an existing wildcard of the joined type",
			in:        append(under("/n/%s", nums[:3]), "/n/{int}", "/n/{int}/x", "/n/1/y"),
			threshold: 3,
			want:      []string{"/n/1/y", "/n/{int}", "/n/{int}/x"},
		},
		{
			name:      "first segment never collapses",
			in:        under("/%s/x", append(slices.Clone(names), nums...)),
			threshold: 3,
			want:      sorted(under("/%s/x", append(slices.Clone(names), nums...))),
		},
		{
			name:      "structural values are kept and not counted",
			in:        []string{"/svc/api", "/svc/v1", "/svc/v2", "/svc/v2beta1", "/svc/alice", "/svc/bob"},
			threshold: 3,
			want:      []string{"/svc/alice", "/svc/api", "/svc/bob", "/svc/v1", "/svc/v2", "/svc/v2beta1"},
		},
		{
			name:      "many dates are data",
			in:        []string{"/reports/2024-01-15", "/reports/2024-01-16", "/reports/2024-02-01"},
			threshold: 3,
			want:      []string{"/reports/{id}"},
		},
		{
			name:      "structural values stay next to the wildcard",
			in:        []string{"/svc/api/x", "/svc/v1", "/svc/alice/x", "/svc/bob/x", "/svc/carol/x", "/svc/dave/y"},
			threshold: 3,
			want:      []string{"/svc/api/x", "/svc/dave/y", "/svc/v1", "/svc/{token}/x"},
		},
		{
			name:      "unclassifiable literals stay and are not counted",
			in:        []string{"/f/a%20b", "/f/a:b", "/f/", "/f/@me", "/f/alice", "/f/bob"},
			threshold: 3,
			want:      []string{"/f/", "/f/@me", "/f/a%20b", "/f/a:b", "/f/alice", "/f/bob"},
		},
		{
			name:      "nested positions collapse after merging",
			in:        []string{"/a/r1/s1", "/a/r2/s2", "/a/r3/s3"},
			threshold: 3,
			want:      []string{"/a/{id}/{id}"},
		},
		{
			name:      "counted per parent",
			in:        []string{"/a/x/1", "/a/x/2", "/a/y/3", "/a/y/4"},
			threshold: 3,
			want:      []string{"/a/x/1", "/a/x/2", "/a/y/3", "/a/y/4"},
		},
		{
			name:      "threshold 0 is off",
			in:        under("/users/%s", names),
			threshold: 0,
			want:      sorted(under("/users/%s", names)),
		},
		{
			name:      "threshold 1 is off",
			in:        []string{"/users/alice"},
			threshold: 1,
			want:      []string{"/users/alice"},
		},
		{
			name:      "negative threshold is off",
			in:        under("/users/%s", names),
			threshold: -1,
			want:      sorted(under("/users/%s", names)),
		},
		{
			name:      "threshold 2",
			in:        []string{"/users/alice", "/users/bob"},
			threshold: 2,
			want:      []string{"/users/{token}"},
		},
		{
			name:      "duplicates removed",
			in:        []string{"/b", "/a/{int}", "/b", "/a/{int}", "/", "/"},
			threshold: 10,
			want:      []string{"/", "/a/{int}", "/b"},
		},
		{
			name:      "empty input",
			in:        nil,
			threshold: 10,
			want:      []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strs(Generalize(keys(t, tt.in...), tt.threshold))
			assert.Equal(t, tt.want, got)
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func randomRoutes(rng *rand.Rand, n int) []Route {
	values := []string{"a", "b", "alice", "bob", "1", "2", "42", "abc", "def", "x1", "api", "v1", "v2", "2024-01-15", "a:b", "", "550e8400-e29b-41d4-a716-446655440000"}
	out := make([]Route, n)
	for i := range out {
		r := make(Route, 1+rng.Intn(4))
		for j := range r {
			if rng.Intn(6) == 0 {
				r[j].Wild = allTypes[rng.Intn(len(allTypes))]
			} else {
				r[j].Lit = values[rng.Intn(len(values))]
			}
		}
		out[i] = r
	}
	return out
}

func TestGeneralizeProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 300; iter++ {
		in := randomRoutes(rng, 1+rng.Intn(60))
		threshold := rng.Intn(6)
		inKeys := strs(in)
		got := Generalize(in, threshold)
		gotKeys := strs(got)

		require.Equal(t, inKeys, strs(in), "input must not be modified")
		require.True(t, slices.IsSorted(gotKeys), "output must be sorted: %q", gotKeys)
		require.Equal(t, len(gotKeys), len(slices.Compact(slices.Clone(gotKeys))), "output must be free of duplicates: %q", gotKeys)

		// Nothing that was allowed before is lost.
		for _, r := range in {
			found := false
			for _, o := range got {
				if Covers(o, r) {
					found = true
					break
				}
			}
			require.True(t, found, "threshold %d: %s is not covered by %q", threshold, r, gotKeys)
		}
		// Every output route is an input route, or comes from one by
		// replacing literals (never the first, never a structural one) with
		// wildcards admitting them.
		for _, o := range got {
			_, err := ParseKey(o.String())
			require.NoError(t, err)
			found := false
			for _, r := range in {
				if derived(o, r) {
					found = true
					break
				}
			}
			require.True(t, found, "threshold %d: %s comes from no input in %q", threshold, o, inKeys)
		}
		// Off means exactly the deduplicated, sorted input.
		if threshold < 2 {
			want := slices.Compact(sorted(inKeys))
			require.Equal(t, want, gotKeys)
		}

		// Deterministic under shuffling, and a fixed point.
		for k := 0; k < 3; k++ {
			shuffled := slices.Clone(in)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			require.Equal(t, gotKeys, strs(Generalize(shuffled, threshold)))
		}
		require.Equal(t, gotKeys, strs(Generalize(got, threshold)), "Generalize must be idempotent")
	}
}

func derived(o, r Route) bool {
	if len(o) != len(r) {
		return false
	}
	for i := range o {
		if o[i] == r[i] {
			continue
		}
		if i == 0 || o[i].Wild == 0 || r[i].Wild != 0 || isStructural(r[i].Lit) || !o[i].Wild.Matches(r[i].Lit) {
			return false
		}
	}
	return true
}

func TestGeneralizeLargeFanOut(t *testing.T) {
	var in []string
	for i := 0; i < 5000; i++ {
		in = append(in, fmt.Sprintf("/users/user%d/orders/o%d", i, i))
	}
	got := strs(Generalize(keys(t, in...), 100))
	assert.Equal(t, []string{"/users/{id}/orders/{id}"}, got)
	assert.True(t, strings.HasPrefix(got[0], "/users/"))
}
