package authzctl

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
	"github.com/otelcol-authz/otelcol-authz/internal/opatest"
)

const intruder = "spiffe://example.org/ns/attacker/sa/intruder"

// tamper rewrites a bundle tarball: edit changes a file's content (nil to
// drop it), extra files are appended after the others.
func tamper(t *testing.T, tarball []byte, edit func(name string, content []byte) []byte, extra map[string][]byte) []byte {
	t.Helper()
	names, files := opatest.Untar(t, tarball)
	var out []string
	for _, n := range names {
		if edit != nil {
			files[n] = edit(n, files[n])
		}
		if files[n] != nil {
			out = append(out, n)
		}
	}
	for n, c := range extra {
		out = append(out, n)
		files[n] = c
	}
	return opatest.Tar(t, out, files)
}

func writeTarball(t *testing.T, tarball []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, os.WriteFile(p, tarball, 0o644))
	return p
}

// editData applies f to data.envoy.authz of the tarball's root data.json.
func editData(t *testing.T, f func(authz map[string]any)) func(string, []byte) []byte {
	return func(name string, content []byte) []byte {
		if strings.TrimPrefix(name, "/") != "data.json" {
			return content
		}
		var doc map[string]any
		require.NoError(t, json.Unmarshal(content, &doc))
		f(doc["envoy"].(map[string]any)["authz"].(map[string]any))
		out, err := json.Marshal(doc)
		require.NoError(t, err)
		return out
	}
}

// A bundle tarball may hold data.json files below the root: OPA merges
// them into the data (as `opa run -b` does for the unpacked layout), but
// render.Read, which explain, diff and report take the grants from, reads
// only the root data.json. A grant hidden in a nested file is enforced by
// OPA and invisible to diff (exit 0, "no changes"), to report and to
// explain's reasons.
func TestRedteamNestedDataFileGrantsInvisible(t *testing.T) {
	b := renderBundle(t, meshRecords(), meshOptions(t))
	hidden := []byte(`{"` + intruder + `": {"GET": {"paths": {"/balances/summary": true}}}}`)
	tampered := tamper(t, b.Tarball, nil, map[string][]byte{
		"/envoy/authz/grants/example.org/ns/bank/sa/balances/@callers/data.json": hidden,
	})
	policy := opatest.Load(t, tampered)
	attack := mtls(balances, intruder, "GET", "/balances/summary")
	require.True(t, policy.Allowed(attack), "OPA enforces the hidden grant")
	require.False(t, opatest.Load(t, b.Tarball).Allowed(attack))

	oldFile, newFile := writeBundle(t, b), writeTarball(t, tampered)

	r := run(t, "", "diff", oldFile, newFile)
	assert.Equal(t, 1, r.code, "the new bundle grants the intruder access: diff must say so\n%s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, intruder)

	r = run(t, "", "report", "--bundle", newFile)
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.Contains(r.stdout, intruder), "the review page hides a grant OPA enforces")

	r = run(t, "", "explain", "--bundle", newFile, "--json", "--callee", balances, "--caller", intruder, "--path", "/balances/summary")
	var x explanation
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &x), r.stdout+r.stderr)
	assert.Equal(t, decisionAllow, x.Decision)
	assert.NotNil(t, x.Reasons[0].Rule, "explain cannot name the rule OPA used: %q", x.Reasons[0].Message)
}

// diff compares data.envoy.authz.callees by mode only, and skips it as a
// setting. The policy applies a known callee's deny rules only through
// callees[id].deny: a bundle whose callees entry lost its deny list allows
// what the old one denied, and diff reports the two bundles equal.
func TestRedteamDiffIgnoresCalleeDenyList(t *testing.T) {
	b := renderBundle(t, meshRecords(), meshOptions(t))
	tampered := tamper(t, b.Tarball, editData(t, func(authz map[string]any) {
		c := authz["callees"].(map[string]any)[balances].(map[string]any)
		require.NotNil(t, c["deny"])
		delete(c, "deny")
	}), nil)
	attack := mtls(balances, frontend, "GET", "/balances/0") // denied by deny rule #2
	require.False(t, opatest.Load(t, b.Tarball).Allowed(attack))
	require.True(t, opatest.Load(t, tampered).Allowed(attack), "the tampered bundle no longer applies the deny rule")

	r := run(t, "", "diff", writeBundle(t, b), writeTarball(t, tampered))
	assert.Equal(t, 1, r.code, "the bundles decide differently, diff says:\n%s", r.stdout)
}

// Text output prints values read from the bundle (its manifest revision,
// caller IDs read from the grants, which render.Read never validates) and
// from the input document (the path) raw: a tampered bundle or a copied
// decision-log input writes terminal control sequences (clear screen, set
// title, OSC 8 links, cursor moves that overwrite "DENY") to the
// operator's terminal.
func TestRedteamTerminalEscapes(t *testing.T) {
	const esc = "\x1b[2J\x1b[1;1HALLOW\x1b]0;pwned\x07"
	b := renderBundle(t, meshRecords(), meshOptions(t))
	tampered := tamper(t, b.Tarball, func(name string, content []byte) []byte {
		if strings.TrimPrefix(name, "/") == ".manifest" {
			var m map[string]any
			require.NoError(t, json.Unmarshal(content, &m))
			m["revision"] = "r1" + esc
			out, _ := json.Marshal(m)
			return out
		}
		return editData(t, func(authz map[string]any) {
			g := authz["grants"].(map[string]any)["example.org"].(map[string]any)["ns"].(map[string]any)["bank"].(map[string]any)["sa"].(map[string]any)["balances"].(map[string]any)["@callers"].(map[string]any)
			g["spiffe://example.org/x"+esc] = map[string]any{"GET": map[string]any{"paths": map[string]any{"/": true}}}
		})(name, content)
	}, nil)
	file := writeTarball(t, tampered)

	r := run(t, "", "explain", "--bundle", file, "--callee", balances, "--caller", payments, "--path", "/x")
	require.Equal(t, 1, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "\x1b", "explain printed an escape sequence from the bundle:\n%q", r.stdout)

	r = run(t, "", "diff", writeBundle(t, b), file)
	assert.NotContains(t, r.stdout, "\x1b", "diff printed an escape sequence from the bundle:\n%q", r.stdout)

	in := writeInput(t, mtls(balances, frontend, "GET", "/balances/"+esc).Input())
	r = run(t, "", "explain", "--bundle", writeBundle(t, b), "--input", in)
	assert.NotContains(t, r.stdout, "\x1b", "explain printed the input's path raw:\n%q", r.stdout)
}

// report --bundle B --review DIR shows, for every callee DIR has an
// evidence.json for, the evidence's rules instead of the bundle's: a stale
// or edited review directory makes the page of bundle B list a rule B does
// not grant and hide one B grants.
func TestRedteamReportShowsEvidenceInsteadOfBundle(t *testing.T) {
	b := renderBundle(t, bank(), render.Options{})
	// The review directory of another revision: balances' evidence lists
	// a route the bundle never granted, and lacks /balances/summary.
	other := renderBundle(t, []aggregate.Record{
		rec(balances, frontend, "GET", "/balances/{int}"),
		rec(balances, frontend, "DELETE", "/admin/wipe"),
	}, render.Options{})
	files := map[string][]byte{}
	for callee, ev := range review.Evidence(review.Rules(other, nil, nil)) {
		files[render.CalleeDir(callee)+"/evidence.json"] = ev
	}
	dir := writeUnpacked(t, files)

	r := run(t, "", "report", "--bundle", writeBundle(t, b), "--review", dir)
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.Contains(r.stdout, "/balances/summary"), "a rule the bundle grants is missing from its page")
	assert.False(t, strings.Contains(r.stdout, "/admin/wipe"), "the page lists a rule the bundle does not grant")
}

// A bundle server that redirects to file:// (or to a host's metadata
// address by another scheme) cannot make authzctl read a local file, and
// a body past the limit is refused with exit status 2.
func TestRedteamHoldsHTTPRedirectToFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, os.WriteFile(secret, renderBundle(t, bank(), render.Options{}).Tarball, 0o644))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file://"+secret, http.StatusFound)
	}))
	defer srv.Close()
	r := run(t, "", "explain", "--bundle", srv.URL, "--callee", balances, "--caller", frontend, "--path", "/")
	assert.Equal(t, 2, r.code, r.stdout)
	assert.Empty(t, r.stdout)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
}

// Hostile tar entry names (absolute, "..", duplicated manifests) neither
// escape nor panic: every such bundle is read or refused with status 2.
func TestRedteamHoldsHostileTarNames(t *testing.T) {
	b := renderBundle(t, bank(), render.Options{})
	for name, extra := range map[string]map[string][]byte{
		"dot-dot":        {"../../../../tmp/x/data.json": []byte(`{}`)},
		"dot-dot data":   {"/x/../data.json": []byte(`{"envoy":{"authz":{"grants":{}}}}`)},
		"deep json":      {"/envoy/authz/deep/data.json": []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))},
		"outside roots":  {"/other/data.json": []byte(`{"a":1}`)},
		"manifest again": {"/.manifest": []byte(`{"revision":"x","roots":[""]}`)},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeTarball(t, tamper(t, b.Tarball, nil, extra))
			r := run(t, "", "explain", "--bundle", file, "--callee", balances, "--caller", payments, "--path", "/")
			assert.Contains(t, []int{1, 2}, r.code, "%s%s", r.stdout, r.stderr)
		})
	}
}

// diff compares data only: a bundle whose policy differs (an extra module
// that allows everything, or an edited policy.rego) grants what the old one
// denied, and diff says "no changes" with exit status 0.
func TestRedteamDiffIgnoresPolicyModules(t *testing.T) {
	b := renderBundle(t, meshRecords(), meshOptions(t))
	tampered := tamper(t, b.Tarball, nil, map[string][]byte{
		"/envoy/authz/evil.rego": []byte("package envoy.authz\n\ngranted if input.attributes.request.http.headers[\"x-open\"] == \"sesame\"\n"),
	})
	attack := mtls(balances, intruder, "GET", "/balances/summary")
	attack.Headers = map[string]string{"x-open": "sesame"}
	require.False(t, opatest.Load(t, b.Tarball).Allowed(attack))
	require.True(t, opatest.Load(t, tampered).Allowed(attack), "the extra module opens a back door")

	r := run(t, "", "diff", writeBundle(t, b), writeTarball(t, tampered))
	assert.Equal(t, 1, r.code, "the bundles decide differently, diff says:\n%s", r.stdout)
}
