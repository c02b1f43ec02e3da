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

var (
	people  = []string{"kim", "lou", "max", "ned", "ola", "pat", "quinn", "rae", "sam", "tom", "uma", "vic"}
	actions = []string{"view", "edit", "delete", "share", "export", "archive", "restore", "rename", "reset-password", "impersonate", "audit"}
)

// pairs fills format with the i-th value of a and of b.
func pairs(format string, a, b []string) []string {
	out := make([]string, len(a))
	for i := range a {
		out[i] = fmt.Sprintf(format, a[i], b[i])
	}
	return out
}

// grid fills format with every value of a and every value of b.
func grid(format string, a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			out = append(out, fmt.Sprintf(format, x, y))
		}
	}
	return out
}

// sparseGrid is three users, each seen with three repositories of their
// own.
func sparseGrid() []string {
	var out []string
	for i, u := range people[:3] {
		for j := 0; j < 3; j++ {
			out = append(out, fmt.Sprintf("/repos/r%d/users/%s", 3*i+j, u))
		}
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
			// One caller's use of many methods of a service is no reason
			// to allow the rest of them.
			name:      "grpc methods stay literal",
			in:        under("/bank.Ledger/%s", []string{"Get", "Put", "List", "Watch", "Open", "Close", "Sum", "Add", "Sub", "Move", "Copy", "Find"}),
			threshold: 10,
			want:      sorted(under("/bank.Ledger/%s", []string{"Get", "Put", "List", "Watch", "Open", "Close", "Sum", "Add", "Sub", "Move", "Copy", "Find"})),
		},
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
			// This used to become /a/{id}/{id}, which admits /a/r1/s2: no
			// position generalizes across different rests of the route.
			name:      "distinct pairs stay literal",
			in:        []string{"/a/r1/s1", "/a/r2/s2", "/a/r3/s3"},
			threshold: 3,
			want:      []string{"/a/r1/s1", "/a/r2/s2", "/a/r3/s3"},
		},
		{
			name:      "ten users with ten different actions",
			in:        pairs("/users/%s/%s", people[:10], actions[:10]),
			threshold: 10,
			want:      sorted(pairs("/users/%s/%s", people[:10], actions[:10])),
		},
		{
			name:      "ten users with ten different actions, one segment deeper",
			in:        pairs("/orgs/acme/users/%s/%s", people[:10], actions[:10]),
			threshold: 10,
			want:      sorted(pairs("/orgs/acme/users/%s/%s", people[:10], actions[:10])),
		},
		{
			// The ten continuations below /users (profile, eight actions
			// of kim, one of lou) used to be generalized together and
			// then admitted /users/{token}/{token}: reset-password for
			// every user.
			name: "one user's actions do not open them for every user",
			in: append(append(under("/users/%s/profile", people[:10]),
				under("/users/kim/%s", actions[:8])...), "/users/lou/audit"),
			threshold: 10,
			want: append(sorted(append(under("/users/kim/%s", actions[:8]), "/users/lou/audit")),
				"/users/{token}/profile"),
		},
		{
			name:      "a grid generalizes both positions",
			in:        grid("/repos/%s/users/%s", people[:10], under("u%s", people[:10])),
			threshold: 10,
			want:      []string{"/repos/{token}/users/{token}"},
		},
		{
			// Each user was seen with ten repositories of their own: the
			// repository slot generalizes per user first, and the users
			// then meet under the one wildcard.
			name:      "a sparse grid generalizes in the other order",
			in:        sparseGrid(),
			threshold: 3,
			want:      []string{"/repos/{id}/users/{token}"},
		},
		{
			name:      "a grid below threshold in one position stays partly literal",
			in:        grid("/repos/%s/users/%s", people[:10], under("u%s", people[:9])),
			threshold: 10,
			want:      sorted(under("/repos/{token}/users/u%s", people[:9])),
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

// routeShape says how to draw random routes: lengths from min to max
// segments, a wildcard one time in wildOneIn, literals from values (the
// first segment from first, when given).
type routeShape struct {
	values, first []string
	min, max      int
	wildOneIn     int
}

func (sh routeShape) routes(rng *rand.Rand, n int) []Route {
	out := make([]Route, n)
	for i := range out {
		r := make(Route, sh.min+rng.Intn(sh.max-sh.min+1))
		for j := range r {
			switch {
			case j == 0 && sh.first != nil:
				r[j].Lit = sh.first[rng.Intn(len(sh.first))]
			case rng.Intn(sh.wildOneIn) == 0:
				r[j].Wild = allTypes[rng.Intn(len(allTypes))]
			default:
				r[j].Lit = sh.values[rng.Intn(len(sh.values))]
			}
		}
		out[i] = r
	}
	return out
}

func randomRoutes(rng *rand.Rand, n int) []Route {
	return routeShape{
		values: []string{"a", "b", "alice", "bob", "1", "2", "42", "abc", "def", "x1", "api", "v1", "v2", "2024-01-15", "a:b", "", "550e8400-e29b-41d4-a716-446655440000"},
		min:    1, max: 4, wildOneIn: 6,
	}.routes(rng, n)
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
	// Every user with an order of their own: no (user, order) pair was seen
	// twice, so nothing generalizes. This used to become
	// /users/{id}/orders/{id}, which admits every order for every user.
	var in []string
	for i := 0; i < 5000; i++ {
		in = append(in, fmt.Sprintf("/users/user%d/orders/o%d", i, i))
	}
	got := Generalize(keys(t, in...), 100)
	assert.Equal(t, sorted(in), strs(got))

	// 100 orders, each seen with 100 users: the user slot generalizes
	// per order, and the orders then meet after the one user wildcard.
	in = in[:0]
	for i := 0; i < 10000; i++ {
		in = append(in, fmt.Sprintf("/users/user%d/orders/o%d", i, i%100))
	}
	assert.Equal(t, []string{"/users/{id}/orders/{id}"}, strs(Generalize(keys(t, in...), 100)))
}

// justifier decides whether a path admitted by Generalize's output is
// backed by observations: it is admitted by an input route, or some slot
// after the first is a wildcard position where at least threshold distinct
// generalizable values were observed, each with exactly this path's rest
// (the other segments), and each of those paths is itself justified without
// using that slot again. A wildcard that joins a value to rests it was never
// seen with (a combination no slot saw often enough) is not justified.
type justifier struct {
	in        []Route
	threshold int
	observed  map[int][]string // position -> distinct literal values in the input
	memo      map[string]bool
}

func newJustifier(in []Route, threshold int) *justifier {
	j := &justifier{in: in, threshold: threshold, observed: map[int][]string{}, memo: map[string]bool{}}
	for _, r := range in {
		for i, s := range r {
			if s.Wild == 0 && !slices.Contains(j.observed[i], s.Lit) {
				j.observed[i] = append(j.observed[i], s.Lit)
			}
		}
	}
	return j
}

func (j *justifier) justified(p []string, used uint) bool {
	key := fmt.Sprint(used, p)
	if v, ok := j.memo[key]; ok {
		return v
	}
	ok := slices.ContainsFunc(j.in, func(r Route) bool { return r.Match(p) })
	for i := 1; i < len(p) && !ok; i++ {
		if used&(1<<i) != 0 {
			continue
		}
		var t Type
		n := 0
		for _, v := range j.observed[i] {
			c, gen := Classify(v)
			if !gen || isStructural(v) {
				continue
			}
			q := slices.Clone(p)
			q[i] = v
			if j.justified(q, used|1<<i) {
				n++
				if t == 0 {
					t = c
				}
				t = Join(t, c)
			}
		}
		ok = n >= j.threshold && t.Matches(p[i])
	}
	j.memo[key] = ok
	return ok
}

// freshValue is a value of type t that no test input uses.
func freshValue(t Type) string {
	switch t {
	case UUID:
		return "ffffffff-ffff-4fff-8fff-ffffffffffff"
	case Token:
		return "zzfresh"
	}
	return "98765"
}

// admittedPaths lists paths o admits: each wildcard filled with every
// observed value it admits and with a fresh one, at most limit paths.
func admittedPaths(o Route, observed map[int][]string, limit int) [][]string {
	out := [][]string{{}}
	for i, s := range o {
		choices := []string{s.Lit}
		if s.Wild != 0 {
			choices = []string{freshValue(s.Wild)}
			for _, v := range observed[i] {
				if s.Wild.Matches(v) {
					choices = append(choices, v)
				}
			}
		}
		var next [][]string
		for _, p := range out {
			for _, c := range choices {
				if len(next) < limit {
					next = append(next, append(slices.Clone(p), c))
				}
			}
		}
		out = next
	}
	return out
}

// checkJustified fails when Generalize's output admits a path that the
// observations do not justify.
func checkJustified(t *testing.T, in []Route, threshold int) {
	t.Helper()
	j := newJustifier(in, threshold)
	for _, o := range Generalize(in, threshold) {
		for _, p := range admittedPaths(o, j.observed, 400) {
			if !j.justified(p, 0) {
				t.Fatalf("threshold %d: %s admits /%s, which the input does not justify: %q",
					threshold, o, strings.Join(p, "/"), strs(in))
			}
		}
	}
}

// smallRoutes are routes over a few values that do generalize, so that
// combinations across positions are common.
func smallRoutes(rng *rand.Rand, n int) []Route {
	return routeShape{
		values: []string{"a", "b", "c", "d", "e", "1", "2", "3", "x1", "y2"},
		first:  []string{"s", "t"},
		min:    2, max: 4, wildOneIn: 12,
	}.routes(rng, n)
}

func TestGeneralizeAdmitsOnlyJustifiedPaths(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for iter := 0; iter < 2000; iter++ {
		checkJustified(t, smallRoutes(rng, 1+rng.Intn(40)), 2+rng.Intn(3))
	}
	for iter := 0; iter < 100; iter++ {
		checkJustified(t, randomRoutes(rng, 1+rng.Intn(60)), 2+rng.Intn(4))
	}
}

// FuzzGeneralize builds routes from the fuzzer's bytes: each byte picks a
// value (or a wildcard) for the next segment, 0xff ends a route.
func FuzzGeneralize(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0xff, 0, 3, 4, 0xff, 0, 5, 6}, uint8(0))
	f.Add([]byte{0, 1, 1, 0xff, 0, 2, 1, 0xff, 0, 1, 2, 0xff, 0, 2, 2}, uint8(0))
	values := []string{"s", "a", "b", "c", "1", "2", "3", "x1", "api", "v1", "2024-01-15", "a:b", ""}
	f.Fuzz(func(t *testing.T, data []byte, threshold uint8) {
		if len(data) > 200 {
			return
		}
		var in []Route
		var r Route
		for _, b := range append(data, 0xff) {
			switch {
			case b == 0xff:
				if len(r) > 0 && len(r) <= 5 {
					in = append(in, r)
				}
				r = nil
			case int(b)%16 < len(values):
				r = append(r, Segment{Lit: values[int(b)%16]})
			default:
				r = append(r, Segment{Wild: allTypes[int(b)%len(allTypes)]})
			}
		}
		checkJustified(t, in, 2+int(threshold)%4)
	})
}

// Routes kept as they are (an API spec's operations) neither widen nor
// count towards a wildcard, and a wildcard the backstop makes that one of
// them also is appears once.
func TestGeneralizeKeeping(t *testing.T) {
	routes := keys(t, "/status/open", "/status/closed", "/status/shipped", "/users/a", "/users/b", "/users/{token}", "/orders/1")
	keep := []bool{true, true, true, false, false, true}
	got := GeneralizeKeeping(routes, keep, 2)
	var s []string
	for _, r := range got {
		s = append(s, r.String())
	}
	assert.Equal(t, []string{"/orders/1", "/status/closed", "/status/open", "/status/shipped", "/users/{token}"}, s)
	assert.Equal(t, Generalize(routes, 2), GeneralizeKeeping(routes, nil, 2))
	assert.Equal(t, "openapi", OpenAPI.String())
}
