package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/xfcc"
)

// The exporter learns (callee, caller) from the XFCC header with xfcc.Hop;
// the policy re-parses the same header at decision time. These tests check
// that both read the same identities from any header:
//
//   - Hop succeeds ⇒ the policy's destination and source are exactly Hop's
//     (otherwise the rule learned from that request is unreachable). This
//     is asserted.
//   - The policy yields a valid (destination, source) pair where Hop fails
//     ("lenient"): the policy takes an identity the exporter would not
//     learn. That is logged, not asserted: it widens access only where the
//     policy reads a SAN that is no SPIFFE ID (a blank-padded one) as one,
//     which xaPolicyFix also removes.
//   - The decision is granted exactly when the policy's pair was granted.

// Identities of the agreement bundle, besides balances, frontend and
// payments from render_test.go.
const (
	xaHTTPBin  = "spiffe://cluster.local/ns/foo/sa/httpbin"
	xaSleep    = "spiffe://cluster.local/ns/foo/sa/sleep"
	xaGateway  = "spiffe://example.org/ns/default/sa/gateway"
	xaBackend  = "spiffe://example.org/ns/default/sa/backend"
	xaAttacker = "spiffe://evil.example/ns/x/sa/attacker"
	xaAdmin    = "spiffe://example.org/ns/bank/sa/admin"
)

// xaGranted are the (destination, source) pairs allowed GET /x. The
// attacker and admin identities are granted nothing, so that taking them
// from the header never allows the request.
var xaGranted = [][2]string{
	{xaHTTPBin, xaSleep},
	{balances, frontend},
	{payments, frontend},
	{xaBackend, xaGateway},
}

// The policy's identities and decision in one evaluation. The identities
// are wrapped in arrays, empty when undefined, so that an undefined one
// does not make the whole query undefined.
const xaQuery = `dst := [d | d := data.envoy.authz.destination]; ` +
	`src := [s | s := data.envoy.authz.source]; ` +
	`allowed := data.envoy.authz.allow`

// xaPolicyFix is the suggested fix of policy.rego, applied in memory only.
// The fuzz target uses the patched policy to tell a known disagreement
// (which the fix removes: the input is skipped) from a new one (which
// fails). Every occurrence of each old text is replaced; a part whose old
// text is gone is taken to have landed in policy.rego.
var xaPolicyFix = []struct{ old, new string }{
	// The grammar admits blanks at both ends of the header, as
	// xfcc.walk does, and an escaped newline, as scanPair does ('.'
	// does not match "\n" in RE2).
	{"xfcc_grammar := `^[A-Za-z]+=", "xfcc_grammar := `^[ \\t]*[A-Za-z]+="},
	{`[^,;"]*))*$` + "`", `[^,;"]*))*[ \t]*$` + "`"},
	{`|\\.)*"`, `|\\[\s\S])*"`},
	// Values are read as xfcc.Hop reads them: an unquoted value without
	// trailing blanks (leading ones stay, so the value is no SPIFFE ID),
	// a quoted one verbatim between its quotes (escapes stay in, so the
	// ID is invalid, as Hop finds it). The scheme is matched
	// case-insensitively, as Hop does, so that an upper-case one makes
	// the key ambiguous or invalid rather than being skipped.
	{
		"\tid := trim(pair[2], \"\\\" \\t\")\n\tstartswith(id, \"spiffe://\")\n}\n",
		"\tid := xfcc_value(pair[2])\n\tstartswith(lower(id), \"spiffe://\")\n}\n\n" +
			"xfcc_value(v) := trim_prefix(trim_suffix(v, `\"`), `\"`) if startswith(v, `\"`)\n" +
			"else := trim_right(v, \" \\t\")\n",
	},
}

// xaOracle evaluates headers against one rendered bundle, and against the
// same bundle with xaPolicyFix applied.
type xaOracle struct {
	granted map[[2]string]bool
	policy  rego.PreparedEvalQuery
	fixed   rego.PreparedEvalQuery
}

func newXAOracle(t testing.TB) *xaOracle {
	t.Helper()
	o := &xaOracle{granted: map[[2]string]bool{}}
	var records []aggregate.Record
	for _, p := range xaGranted {
		o.granted[p] = true
		records = append(records, rec(p[0], p[1], "GET", "/x"))
	}
	b := mustRender(t, records)
	require.Len(t, b.Rules, len(xaGranted))

	o.policy = xaPrepare(t, b.Tarball, nil)
	src := string(Policy)
	for _, fix := range xaPolicyFix {
		src = strings.ReplaceAll(src, fix.old, fix.new)
	}
	o.fixed = xaPrepare(t, b.Tarball, []byte(src))
	return o
}

// xaPrepare loads the bundle, with its policy replaced when module is not
// nil, and prepares xaQuery.
func xaPrepare(t testing.TB, tarball, module []byte) rego.PreparedEvalQuery {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	require.NoError(t, err)
	if module != nil {
		require.Len(t, b.Modules, 1)
		m := &b.Modules[0]
		m.Raw = module
		m.Parsed, err = ast.ParseModuleWithOpts(m.Path, string(module), ast.ParserOptions{RegoVersion: ast.RegoV1})
		require.NoError(t, err, "patched policy")
	}
	q, err := rego.New(rego.Query(xaQuery), rego.ParsedBundle("authz", &b)).PrepareForEval(context.Background())
	require.NoError(t, err)
	return q
}

// xaView is what the exporter and the policy make of one header.
type xaView struct {
	hopDst, hopSrc string
	hopErr         error
	// dst and src are the policy's identities, "" when undefined.
	dst, src string
	allowed  bool
}

func (v xaView) String() string {
	hop := fmt.Sprintf("Hop = (%q, %q)", v.hopDst, v.hopSrc)
	if v.hopErr != nil {
		hop = fmt.Sprintf("Hop fails: %v", v.hopErr)
	}
	return fmt.Sprintf("%s; policy: destination %q, source %q, allowed %v", hop, v.dst, v.src, v.allowed)
}

// agrees reports whether the policy has exactly Hop's identities.
func (v xaView) agrees() bool {
	return v.hopErr == nil && v.dst == v.hopDst && v.src == v.hopSrc
}

// unreachable reports whether Hop learns a pair the policy does not read.
func (v xaView) unreachable() bool { return v.hopErr == nil && !v.agrees() }

// lenient reports whether the policy takes a valid pair Hop refuses.
func (v xaView) lenient() bool {
	return v.hopErr != nil && v.dst != "" && v.src != "" &&
		spiffeid.Validate(v.dst) == nil && spiffeid.Validate(v.src) == nil
}

// view evaluates header alone, as the policy sees it when Envoy reports no
// principals.
func (o *xaOracle) view(t testing.TB, q rego.PreparedEvalQuery, header string) xaView {
	t.Helper()
	return o.viewWith(t, q, header, nil)
}

// viewWith evaluates header with the principals Envoy reports, by side
// ("source", "destination"; an empty one is reported as "").
func (o *xaOracle) viewWith(t testing.TB, q rego.PreparedEvalQuery, header string, principals map[string]string) xaView {
	t.Helper()
	var v xaView
	v.hopDst, v.hopSrc, v.hopErr = xfcc.Hop(header)
	attrs := map[string]any{"request": map[string]any{"http": map[string]any{
		"method":  "GET",
		"path":    "/x",
		"headers": map[string]any{"x-forwarded-client-cert": header},
	}}}
	for side, p := range principals {
		attrs[side] = map[string]any{"principal": p}
	}
	input := map[string]any{"attributes": attrs}
	rs, err := q.Eval(context.Background(), rego.EvalInput(input))
	if err != nil {
		t.Fatalf("policy fails on %q: %v", header, err)
	}
	if len(rs) != 1 {
		t.Fatalf("policy on %q: %d results, want 1", header, len(rs))
	}
	one := func(name string) string {
		vals, ok := rs[0].Bindings[name].([]any)
		if !ok || len(vals) > 1 {
			t.Fatalf("policy on %q: %s is %v, want at most one value", header, name, rs[0].Bindings[name])
		}
		if len(vals) == 0 {
			return ""
		}
		s, ok := vals[0].(string)
		if !ok || s == "" {
			t.Fatalf("policy on %q: %s is %#v, want a non-empty string", header, name, vals[0])
		}
		return s
	}
	v.dst, v.src = one("dst"), one("src")
	allowed, ok := rs[0].Bindings["allowed"].(bool)
	if !ok {
		t.Fatalf("policy on %q: allow is %v, want a boolean", header, rs[0].Bindings["allowed"])
	}
	v.allowed = allowed
	return v
}

// xaPrincipals are the principals Envoy may report besides a header:
// none, empty ones, one side, both.
var xaPrincipals = []map[string]string{
	nil,
	{"source": "", "destination": ""},
	{"source": frontend},
	{"source": frontend, "destination": ""},
	{"destination": balances},
	{"destination": balances, "source": ""},
	{"source": frontend, "destination": balances},
	{"source": xaAttacker, "destination": balances},
}

// xaSelect is the policy's documented choice of identities, given the
// principals Envoy reports and what the policy reads from the header alone:
// once Envoy reports a (non-empty) principal, the principals name both
// sides and a side without one has no identity; only without principals
// does the header count, for both sides.
func xaSelect(principals map[string]string, header xaView) (dst, src string) {
	if principals["source"] == "" && principals["destination"] == "" {
		return header.dst, header.src
	}
	return principals["destination"], principals["source"]
}

// checkPrincipals asserts that, with each of xaPrincipals, the policy takes
// the identities xaSelect names and decides on them alone.
func (o *xaOracle) checkPrincipals(t *testing.T, header string) {
	t.Helper()
	alone := o.view(t, o.policy, header)
	for _, p := range xaPrincipals {
		v := o.viewWith(t, o.policy, header, p)
		dst, src := xaSelect(p, alone)
		if v.dst != dst || v.src != src {
			t.Fatalf("header %q, principals %v: policy reads (%q, %q), want (%q, %q)", header, p, v.dst, v.src, dst, src)
		}
		if want := dst != "" && src != "" && o.granted[[2]string{dst, src}]; v.allowed != want {
			t.Fatalf("header %q, principals %v: allowed %v, want %v", header, p, v.allowed, want)
		}
	}
}

// check asserts the agreement on header and returns the policy's view. A
// disagreement the suggested fix removes does not fail: check returns it
// as bug, for the caller to skip.
func (o *xaOracle) check(t *testing.T, header string) (v xaView, bug string) {
	t.Helper()
	v = o.view(t, o.policy, header)
	// Whatever the header, the request is allowed exactly when the pair
	// the policy read was granted: the identities checked here are the
	// ones the decision uses.
	if want := v.dst != "" && v.src != "" && o.granted[[2]string{v.dst, v.src}]; v.allowed != want {
		t.Fatalf("header %q: allowed %v, but the policy's pair granted is %v (%v)", header, v.allowed, want, v)
	}
	if v.unreachable() {
		what := "reads no identity"
		if v.dst != "" && v.src != "" {
			// Worse than unreachable: the policy reads another pair.
			what = "reads other identities"
		}
		if fixed := o.view(t, o.fixed, header); fixed.agrees() {
			return v, fmt.Sprintf("unreachable rule (the policy %s), fixed by xaPolicyFix: header %q: %v", what, header, v)
		}
		t.Fatalf("unreachable: the exporter learns a rule the policy never matches (the policy %s): header %q: %v", what, header, v)
	}
	if v.lenient() {
		t.Logf("lenient: the policy takes an identity the exporter would not learn: header %q: %v", header, v)
	}
	return v, ""
}

// Outcomes of a corpus header under the policy.
type xaOutcome int

const (
	xaAgree   xaOutcome = iota // Hop succeeds and the policy agrees
	xaRefused                  // neither yields a valid pair
	xaLenient                  // only the policy yields a valid pair
)

// xaTolerated are the outcomes a corpus header may have besides the
// expected one: where the policy is expected to be lenient, refusing is
// as good (and what xaPolicyFix does).
var xaTolerated = map[xaOutcome][]xaOutcome{xaLenient: {xaRefused}}

func (o xaOutcome) String() string {
	return [...]string{"agree", "refused", "lenient"}[o]
}

func xaOutcomeOf(v xaView) xaOutcome {
	switch {
	case v.agrees():
		return xaAgree
	case v.lenient():
		return xaLenient
	}
	return xaRefused
}

// istioXFCC is an element as Istio's sidecar writes it.
func istioXFCC(by, uri string) string {
	return "By=" + by + ";Hash=c1f0b7b6e5b0e1d2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6;Subject=\"\";URI=" + uri
}

type xaSeed struct {
	name   string
	header string
	want   xaOutcome
	// bug describes a disagreement of the policy that xaPolicyFix
	// removes; the corpus test skips the seed unless failing is set (a
	// real bug with an obvious fix). Once the policy agrees, the seed is
	// checked as any other, with want agree.
	bug     string
	failing bool
}

var xaSeeds = []xaSeed{
	{name: "istio", header: istioXFCC(xaHTTPBin, xaSleep)},
	{name: "istio with cert and chain", header: "By=" + xaHTTPBin + ";Hash=ab12;" +
		`Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%2Fz%3D%3D%0A-----END%20CERTIFICATE-----%0A";` +
		`Chain="-----BEGIN%20CERTIFICATE-----%0AMIIC%0A-----END%20CERTIFICATE-----%0A";` +
		`Subject="";URI=` + xaSleep + ";DNS=sleep.foo.svc.cluster.local"},
	{name: "append-forward chain", header: "By=" + xaGateway + ";Hash=aa;URI=" + xaAttacker + "," +
		"By=" + xaBackend + ";Hash=bb;Subject=\"CN=gateway,O=Example\";URI=" + xaGateway},
	{name: "forged first element", header: "By=" + balances + ";URI=" + xaAdmin + "," + istioXFCC(balances, frontend)},
	{name: "quoted subject with By= inside", header: "By=" + balances + `;Subject="CN=x,O=y;By=` + xaAttacker + `,URI=` + xaAttacker + `";URI=` + frontend},
	{name: "escaped quotes in subject", header: "By=" + balances + `;Subject="CN=\"a,b\";By=` + xaAttacker + `";URI=` + frontend},
	{name: "escaped backslash before closing quote", header: "By=" + balances + `;Subject="CN=a\\";URI=` + frontend},
	{name: "lower-case keys", header: "by=" + balances + ";hash=aa;subject=\"\";uri=" + frontend},
	{name: "legacy SAN", header: "By=" + balances + ";SAN=" + frontend},
	{name: "repeated identical URI", header: "By=" + balances + ";URI=" + frontend + ";URI=" + frontend},
	{name: "repeated URI", header: "By=" + balances + ";URI=" + frontend + ";URI=" + payments, want: xaRefused},
	{name: "spaces around separators", header: "By=" + balances + " ; Hash=aa ;URI=" + xaAttacker + " , By=" + payments + " ;\tURI=" + frontend + " \t"},
	{name: "trailing comma", header: istioXFCC(balances, frontend) + ",", want: xaRefused},
	{name: "unterminated quote", header: "By=" + balances + `;Subject="CN=x;URI=` + frontend, want: xaRefused},
	{name: "non-SPIFFE URI next to SPIFFE", header: "By=" + balances + ";URI=https://frontend.bank.svc/;URI=" + frontend + ";DNS=frontend"},
	{name: "non-SPIFFE By next to SPIFFE", header: "By=urn:x;By=" + balances + ";URI=" + frontend},
	{name: "quoted URI", header: "By=" + balances + `;URI="` + frontend + `"`},
	{name: "escaped URI", header: "By=" + balances + `;URI="spiffe://example.org/ns/bank/sa/front\end"`, want: xaRefused},
	{name: "invalid SPIFFE URI", header: "By=" + balances + ";URI=spiffe://example.org/ns/../sa/frontend", want: xaRefused},
	{name: "upper-case trust domain next to valid", header: "By=" + balances + ";URI=spiffe://Example.org/x;URI=" + frontend, want: xaRefused},
	{name: "By only in an earlier element", header: istioXFCC(balances, frontend) + ",Hash=bb;URI=" + frontend, want: xaRefused},
	{name: "empty", header: "", want: xaRefused},

	// Next to the shape the policy reads in one match (one element, By
	// first, URI once, unquoted) and just outside it, where it reads the
	// header pair by pair.
	{name: "envoy with DNS after URI", header: "By=" + balances + ";Hash=aa;Subject=\"\";URI=" + frontend + ";DNS=frontend.bank.svc;DNS=frontend"},
	{name: "URI= and By= inside a quoted subject", header: "By=" + balances + `;Subject="CN=x;URI=` + xaAttacker + `;By=` + xaAttacker + `";URI=` + frontend},
	{name: "URI before By", header: "URI=" + frontend + ";Hash=aa;By=" + balances},
	{name: "unknown key between", header: "By=" + balances + ";Foo=bar;URI=" + frontend},
	{name: "blank after URI", header: "By=" + balances + ";URI=" + frontend + " "},
	{name: "blank before separator", header: "By=" + balances + " ;URI=" + frontend},
	{name: "upper-case keys and scheme", header: "BY=SPIFFE://example.org/ns/bank/sa/balances;URI=" + frontend, want: xaRefused},
	{name: "key ending in by", header: "XBy=" + xaAttacker + ";By=" + balances + ";URI=" + frontend},

	// The policy takes an identity Hop refuses: tolerated, logged.
	{name: "upper-case scheme next to valid", header: "By=" + balances + ";URI=SPIFFE://example.org/ns/bank/sa/admin;URI=" + frontend, want: xaLenient},
	{name: "blank-padded quoted URI", header: "By=" + balances + `;URI=" ` + frontend + ` "`, want: xaLenient},
	{name: "blank before unquoted By", header: "By= " + balances + ";URI=" + frontend, want: xaLenient},
	{name: "more than 64 elements", header: strings.Repeat("Hash=aa,", 64) + istioXFCC(balances, frontend), want: xaLenient},
	{name: "more than 64 pairs", header: strings.Repeat("DNS=a;", 64) + istioXFCC(balances, frontend), want: xaLenient},

	// The exporter learns what the policy does not read.
	{
		name:    "blank-led URI next to a valid one",
		header:  "By=" + balances + ";URI= " + xaAttacker + ";URI=" + frontend,
		bug:     "the policy trims leading blanks, so it sees two SPIFFE IDs where Hop sees one",
		failing: true,
	},
	{
		name:    "blank-padded quoted URI next to a valid one",
		header:  "By=" + balances + `;URI=" ` + xaAttacker + `";URI=` + frontend,
		bug:     "the policy trims quoted values, so it sees two SPIFFE IDs where Hop sees one",
		failing: true,
	},
	{
		name:   "leading blank",
		header: " " + istioXFCC(balances, frontend),
		bug:    "the policy's grammar refuses blanks before the first key (Envoy strips them, so not reachable)",
	},
	{
		name:   "blank after final quoted value",
		header: "By=" + balances + ";URI=" + frontend + `;Subject="" `,
		bug:    "the policy's grammar refuses blanks after a final quoted value (Envoy strips them, so not reachable)",
	},
	{
		name:   "escaped newline in subject",
		header: "By=" + balances + ";Subject=\"a\\\nb\";URI=" + frontend,
		bug:    `the policy's grammar refuses "\" before a newline ('.' does not match "\n"; header values never hold one)`,
	},
}

func FuzzXFCCAgreement(f *testing.F) {
	for _, s := range xaSeeds {
		f.Add(s.header)
	}
	o := newXAOracle(f)
	valid := istioXFCC(balances, frontend)
	f.Fuzz(func(t *testing.T, header string) {
		// Most mutations break the syntax, and both sides then refuse.
		// The header is also checked after and before a valid element's
		// pairs, where, unless it adds identities or separators, Hop
		// succeeds and the policy has to follow.
		var bugs []string
		for _, h := range []string{header, valid + ";" + header, header + ";" + valid} {
			if _, bug := o.check(t, h); bug != "" {
				bugs = append(bugs, bug)
			}
		}
		if len(bugs) != 0 {
			t.Skip("bug: " + strings.Join(bugs, "; "))
		}
		o.checkPrincipals(t, header)
	})
}

func TestXFCCAgreementCorpus(t *testing.T) {
	o := newXAOracle(t)
	lenient := 0
	for _, s := range xaSeeds {
		t.Run(s.name, func(t *testing.T) {
			if v := o.view(t, o.policy, s.header); s.bug != "" && v.unreachable() {
				fixed := o.view(t, o.fixed, s.header)
				require.True(t, fixed.agrees(), "xaPolicyFix does not fix %q: %v", s.header, fixed)
				if !s.failing {
					t.Skipf("bug: %s: header %q: %v", s.bug, s.header, v)
				}
				t.Errorf("bug: %s: header %q: %v", s.bug, s.header, v)
				return
			}
			v, bug := o.check(t, s.header)
			require.Empty(t, bug)
			if got := xaOutcomeOf(v); got != s.want && !slices.Contains(xaTolerated[s.want], got) {
				t.Fatalf("header %q: %s, want %s: %v", s.header, got, s.want, v)
			}
			if v.lenient() {
				lenient++
			}
			// The suggested fix keeps every agreement and refusal, and
			// removes the leniency except for Hop's size limits.
			fixed := o.view(t, o.fixed, s.header)
			want := s.want
			if want == xaLenient && !errors.Is(v.hopErr, xfcc.ErrTooLong) {
				want = xaRefused
			}
			if got := xaOutcomeOf(fixed); got != want {
				t.Errorf("with xaPolicyFix, header %q: %s, want %s: %v", s.header, got, want, fixed)
			}
		})
	}
	t.Logf("%d corpus headers where the policy takes identities the exporter refuses", lenient)
}

// Principals Envoy reports decide over any corpus header as documented.
func TestIdentitySelectionCorpus(t *testing.T) {
	o := newXAOracle(t)
	for _, s := range xaSeeds {
		t.Run(s.name, func(t *testing.T) { o.checkPrincipals(t, s.header) })
	}
}
