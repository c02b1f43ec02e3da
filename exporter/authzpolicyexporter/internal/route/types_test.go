package route

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var allTypes = []Type{Int, Hex, UUID, ID, Token}

func TestTypeStringAndParse(t *testing.T) {
	want := map[Type]string{Int: "int", Hex: "hex", UUID: "uuid", ID: "id", Token: "token"}
	for typ, name := range want {
		assert.Equal(t, name, typ.String())
		got, ok := ParseType(name)
		assert.True(t, ok, name)
		assert.Equal(t, typ, got)
	}
	for _, bad := range []Type{0, Token + 1, 255} {
		assert.Equal(t, "invalid", bad.String())
		assert.False(t, bad.Matches("1"), "invalid type %d must admit nothing", bad)
	}
	for _, name := range []string{"", "invalid", "INT", "Int", " int", "string", "path", "*"} {
		_, ok := ParseType(name)
		assert.False(t, ok, name)
	}

	// Patterns defines exactly the five types, each anchored at both ends.
	var names []string
	for name, p := range Patterns {
		names = append(names, name)
		assert.True(t, strings.HasPrefix(p, "^") && strings.HasSuffix(p, "$"), "pattern %s must be anchored", name)
	}
	sort.Strings(names)
	assert.Equal(t, []string{"hex", "id", "int", "token", "uuid"}, names)
}

func TestMatches(t *testing.T) {
	const uuid = "550e8400-e29b-41d4-a716-446655440000"
	tests := []struct {
		s                         string
		int, hex, uuid, id, token bool
	}{
		{s: ""},
		{s: "."},
		{s: ".."},
		{s: "%2e"},
		{s: "%41"},
		{s: "a/b"},
		{s: "a b"},
		{s: "{int}"},
		{s: "1\n"},
		{s: "\n1"},
		{s: "é1"},
		{s: "1+2"},
		{s: "a:1"},
		{s: "0", int: true, hex: true, id: true, token: true},
		{s: "12345", int: true, hex: true, id: true, token: true},
		{s: "00000000000000000000000000000000000000001", int: true, hex: true, id: true, token: true},
		{s: "-1", id: true, token: true},
		{s: "+1"},
		{s: "1.5", id: true, token: true},
		{s: "abc", token: true},
		{s: "ABCdef", token: true},
		{s: "ABCde1", hex: true, id: true, token: true},
		{s: "9f3b2c1d7e", hex: true, id: true, token: true},
		{s: "deadbeef", token: true},
		{s: "0x1f", id: true, token: true},
		{s: "g", token: true},
		{s: "admin", token: true},
		{s: "balance_1", id: true, token: true},
		{s: "order-2024-0001", id: true, token: true},
		{s: "~", token: true},
		{s: "_", token: true},
		{s: "-", token: true},
		{s: ".a", token: true},
		{s: "..a", token: true},
		{s: "...", token: true},
		{s: ".1", id: true, token: true},
		{s: "..1", id: true, token: true},
		{s: uuid, uuid: true, id: true, token: true},
		{s: strings.ToUpper(uuid), uuid: true, id: true, token: true},
		{s: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", uuid: true, token: true},
		{s: uuid + "0", id: true, token: true},
		{s: uuid[:35], id: true, token: true},
		{s: "550e8400e29b-41d4-a716-4466554400000", id: true, token: true},
		{s: "550e8400-e29b-41d4-a716-44665544000g", id: true, token: true},
		{s: "{" + uuid + "}"},
	}
	for _, tt := range tests {
		want := map[Type]bool{Int: tt.int, Hex: tt.hex, UUID: tt.uuid, ID: tt.id, Token: tt.token}
		for _, typ := range allTypes {
			assert.Equal(t, want[typ], typ.Matches(tt.s), "%s.Matches(%q)", typ, tt.s)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		s    string
		want Type
		ok   bool
	}{
		{"", 0, false},
		{".", 0, false},
		{"..", 0, false},
		{"a%20b", 0, false},
		{"a:b", 0, false},
		{"{int}", 0, false},
		{"42", Int, true},
		{"abc", Token, true},
		{"abc1", Hex, true},
		{"550e8400-e29b-41d4-a716-446655440000", UUID, true},
		{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", UUID, true},
		{"order-2024-0001", ID, true},
		{"x1", ID, true},
		{"admin", Token, true},
		{"...", Token, true},
	}
	for _, tt := range tests {
		got, ok := Classify(tt.s)
		assert.Equal(t, tt.ok, ok, "Classify(%q)", tt.s)
		assert.Equal(t, tt.want, got, "Classify(%q)", tt.s)
	}
}

// TestClassifyIsFirstMatch pins Classify to "the first type in lattice order
// that admits s" on the whole sample.
func TestClassifyIsFirstMatch(t *testing.T) {
	for _, s := range sampleStrings() {
		got, ok := Classify(s)
		var want Type
		for _, typ := range allTypes {
			if typ.Matches(s) {
				want = typ
				break
			}
		}
		require.Equal(t, want != 0, ok, "Classify(%q)", s)
		require.Equal(t, want, got, "Classify(%q)", s)
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ a, b, want Type }{
		{Int, Int, Int},
		{Int, Hex, Hex},
		{Int, ID, ID},
		{Int, UUID, Token},
		{Int, Token, Token},
		{Hex, Hex, Hex},
		{Hex, ID, ID},
		{Hex, UUID, Token},
		{Hex, Token, Token},
		{UUID, UUID, UUID},
		{UUID, ID, Token},
		{UUID, Token, Token},
		{ID, ID, ID},
		{ID, Token, Token},
		{Token, Token, Token},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Join(tt.a, tt.b), "Join(%s, %s)", tt.a, tt.b)
		assert.Equal(t, tt.want, Join(tt.b, tt.a), "Join(%s, %s)", tt.b, tt.a)
	}
}

func TestJoinLaws(t *testing.T) {
	for _, a := range allTypes {
		assert.Equal(t, a, Join(a, a), "idempotence of %s", a)
		assert.Equal(t, Token, Join(a, Token), "Token is the top")
		for _, b := range allTypes {
			assert.Equal(t, Join(a, b), Join(b, a), "commutativity %s %s", a, b)
			for _, c := range allTypes {
				assert.Equal(t, Join(Join(a, b), c), Join(a, Join(b, c)), "associativity %s %s %s", a, b, c)
			}
		}
	}
}

// TestJoinIsLeastUpperBoundOnSample checks on the sample set that Join(a, b)
// admits everything a or b admits, and that no type admitting all of that is
// narrower than Join(a, b).
func TestJoinIsLeastUpperBoundOnSample(t *testing.T) {
	samples := sampleStrings()
	admits := map[Type]map[string]bool{}
	for _, typ := range allTypes {
		admits[typ] = map[string]bool{}
		for _, s := range samples {
			if typ.Matches(s) {
				admits[typ][s] = true
			}
		}
	}
	subset := func(x, y Type) bool { // x ⊆ y on the sample
		for s := range admits[x] {
			if !admits[y][s] {
				return false
			}
		}
		return true
	}
	for _, a := range allTypes {
		for _, b := range allTypes {
			j := Join(a, b)
			require.True(t, subset(a, j), "Join(%s,%s)=%s must admit all of %s", a, b, j, a)
			require.True(t, subset(b, j), "Join(%s,%s)=%s must admit all of %s", a, b, j, b)
			for _, c := range allTypes {
				if subset(a, c) && subset(b, c) {
					assert.True(t, subset(j, c), "Join(%s,%s)=%s is wider than the upper bound %s", a, b, j, c)
				}
			}
		}
	}
	// The sample is rich enough to tell the types apart.
	for _, a := range allTypes {
		for _, b := range allTypes {
			if a != b {
				assert.False(t, subset(a, b) && subset(b, a), "sample cannot distinguish %s and %s", a, b)
			}
		}
	}
}

func TestMatchesAgreesWithPattern(t *testing.T) {
	res := patternRegexps(t)
	samples := sampleStrings()
	require.Greater(t, len(samples), 20000)
	for _, s := range samples {
		for _, typ := range allTypes {
			if got, want := typ.Matches(s), res[typ].MatchString(s); got != want {
				t.Fatalf("%s.Matches(%q) = %v, pattern %s says %v", typ, s, got, Patterns[typ.String()], want)
			}
		}
	}
}

func FuzzMatchesAgreesWithPattern(f *testing.F) {
	for _, s := range seedStrings() {
		f.Add(s)
	}
	res := patternRegexps(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range allTypes {
			if got, want := typ.Matches(s), res[typ].MatchString(s); got != want {
				t.Fatalf("%s.Matches(%q) = %v, pattern %s says %v", typ, s, got, Patterns[typ.String()], want)
			}
		}
		// Whatever agrees with the patterns must also never admit a dot
		// segment, an empty segment or anything escaped.
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "%/\\") {
			for _, typ := range allTypes {
				if typ.Matches(s) {
					t.Fatalf("%s admits %q", typ, s)
				}
			}
		}
		if typ, ok := Classify(s); ok && !typ.Matches(s) {
			t.Fatalf("Classify(%q) = %s, which does not admit it", s, typ)
		}
	})
}

// patternRegexps compiles Patterns afresh (not the package's own compiled
// map), so the test checks the text the policy uses.
func patternRegexps(tb testing.TB) map[Type]*regexp.Regexp {
	tb.Helper()
	m := map[Type]*regexp.Regexp{}
	for _, typ := range allTypes {
		p, ok := Patterns[typ.String()]
		require.True(tb, ok, "no pattern for %s", typ)
		m[typ] = regexp.MustCompile(p)
	}
	return m
}

// sampleStrings returns every string of length 0 to 4 over a small alphabet
// that exercises each character class the types distinguish, plus UUID-like
// strings and some odd cases.
func sampleStrings() []string {
	const alphabet = ".%-09afAFgZ~_"
	out := []string{""}
	level := []string{""}
	for n := 1; n <= 4; n++ {
		var next []string
		for _, p := range level {
			for i := 0; i < len(alphabet); i++ {
				next = append(next, p+alphabet[i:i+1])
			}
		}
		out = append(out, next...)
		level = next
	}
	return append(out, seedStrings()...)
}

func seedStrings() []string {
	uuids := []string{
		"550e8400-e29b-41d4-a716-446655440000",
		"00000000-0000-0000-0000-000000000000",
		"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
		"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
		"123e4567-e89b-12d3-a456-426614174000",
	}
	out := []string{
		"..", ".", "...", ".a", "..a", "a.", "%2e", "%2e%2e", "%", "a\n", "1\n", "\n",
		"a b", "é", "\xff", "\x00", "{int}", "<id>", "a/b", `a\b`, "12345", "9f3b2c1d7e",
		"order-2024-0001", "balance_1", "v1", "2024-01-15", "~user", "_", "-",
	}
	for _, u := range uuids {
		out = append(out, u, strings.ToUpper(u), "{"+u+"}", u+"0", u[:35], u[1:], strings.ReplaceAll(u, "-", ""), strings.Replace(u, "-", "", 1)+"0", strings.Replace(u, "a", "g", 1), strings.Replace(u, "0", ".", 1), strings.Replace(u, "-", "_", 1))
		// Dash moved one place left and right.
		for _, at := range []int{8, 13, 18, 23} {
			b := []byte(u)
			b[at], b[at-1] = b[at-1], b[at]
			out = append(out, string(b))
			b = []byte(u)
			b[at], b[at+1] = b[at+1], b[at]
			out = append(out, string(b))
		}
	}
	for i := 0; i < 40; i++ {
		out = append(out, strings.Repeat("a", i)+fmt.Sprint(i), strings.Repeat(".", i))
	}
	return out
}

// Within and Meet agree with the types' matchers on segments of each kind:
// what Within says is implied never fails, and Meet is true exactly when
// some segment is admitted by both.
func TestWithinAndMeet(t *testing.T) {
	segs := []string{"0", "42", "ab1", "cafe", "a1b2c3", "user-1", "v1.2", "x_9~",
		"alice", "me", ".hidden", "..x", "0f3c9e2a-1b4d-4c8e-9a7f-2d6b8e1c5a3f",
		"abcdefab-abcd-abcd-abcd-abcdefabcdef", "ABCDEF01-2345-6789-abcd-ef0123456789"}
	for _, a := range allTypes {
		for _, b := range allTypes {
			both := false
			for _, s := range segs {
				if a.Matches(s) && b.Matches(s) {
					both = true
				}
				if Within(a, b) && a.Matches(s) {
					assert.True(t, b.Matches(s), "Within(%s, %s) but %q", a, b, s)
				}
			}
			assert.Equal(t, both, Meet(a, b), "Meet(%s, %s)", a, b)
		}
	}
}
