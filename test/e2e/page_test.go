//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-authz/otelcol-authz/internal/browsertest"
)

// chromium is the browser `make e2e` names (and `make packages`
// installs), else one on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p, ok := os.LookupEnv("OTELCOL_AUTHZ_CHROMIUM"); ok {
		_, err := os.Stat(p)
		require.NoError(t, err, "OTELCOL_AUTHZ_CHROMIUM names no browser (apt-get install -y chromium, or make packages)")
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium; run `make packages`")
	}
	t.Skip("no Chromium on PATH; run `make packages`")
	return ""
}

// browserEvents is what the page did that a test must see: dialogs,
// exceptions, console and log errors, and every request.
type browserEvents struct {
	mu              sync.Mutex
	dialogs, errors []string
	requests        []string
}

func (b *browserEvents) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *browserEvents) snapshot() (dialogs, errors, requests []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dialogs), slices.Clone(b.errors), slices.Clone(b.requests)
}

// openBrowser starts a headless Chromium with a fresh profile and no
// background traffic of its own, and records what its tab does.
func openBrowser(t *testing.T) (context.Context, *browserEvents) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(browsertest.Profile(t)),
		chromedp.WindowSize(1400, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)

	ev := &browserEvents{}
	chromedp.ListenTarget(ctx, func(e any) {
		switch e := e.(type) {
		case *page.EventJavascriptDialogOpening:
			ev.add(&ev.dialogs, e.Type.String()+": "+e.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) }()
		case *runtime.EventExceptionThrown:
			ev.add(&ev.errors, "exception: "+e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning || e.Type == runtime.APITypeAssert {
				ev.add(&ev.errors, "console "+e.Type.String())
			}
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError || e.Entry.Level == log.LevelWarning {
				ev.add(&ev.errors, "log "+e.Entry.Source.String()+": "+e.Entry.Text)
			}
		case *network.EventRequestWillBeSent:
			ev.add(&ev.requests, e.Request.URL)
		}
	})
	require.NoError(t, chromedp.Run(ctx, network.Enable(), log.Enable(), runtime.Enable()))
	return ctx, ev
}

// The review page the collector writes into the unpacked directory, in a
// real browser: one node per identity and one edge per caller and callee,
// a filter that hides the other rows, hostile observed paths shown as
// text with nothing run, and no request beyond the file itself.
func TestE2EReviewPage(t *testing.T) {
	unpacked := filepath.Join(t.TempDir(), "review")
	c := startConfigured(t, map[string]any{"output": map[string]any{"unpacked_dir": unpacked}})

	// Paths with a quote, <, > or a space are refused by the exporter
	// (they are no path a server routes); the ones below it learns, and
	// they would break out of a single-quoted attribute, be read as an
	// entity, or decode to markup if anything decoded them.
	hostile := []string{
		`/x/'onmouseover='alert(1)`,
		`/q/a&amp;b`,
		`/x/%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E`,
		`/%3C/title%3E%3Cscript%3Ealert(1)%3C/script%3E`,
	}
	refused := `/x/"><img src=x onerror=alert(1)>`
	accesses := []access{
		{balances, frontend, "GET", "/balances/summary"},
		{payments, frontend, "POST", "/payments"},
		{backend, payments, "POST", "/ledger/entries"},
		{balances, frontend, "GET", refused},
	}
	for _, p := range hostile {
		accesses = append(accesses, access{balances, frontend, "GET", p})
	}
	sendAccesses(t, c.otlp, accesses...)
	p := waitForPublished(t, c.outDir, "at all", func(published) bool { return true })
	waitForUnpacked(t, unpacked, p.revision())
	index := filepath.Join(unpacked, "index.html")
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(index)
		return err == nil && strings.Contains(string(raw), p.revision())
	}, waitFor, 100*time.Millisecond, "no review page for revision %s", p.revision())

	// What the page must show, from the evidence files beside it.
	type rule struct{ callee, caller, method, route string }
	var rules []rule
	ids := map[string]bool{}
	pairs := map[[2]string]bool{}
	for _, callee := range []string{balances, payments, backend} {
		var evidence []struct{ Caller, Method, Route string }
		readJSON(t, filepath.Join(calleeDir(unpacked, callee), "evidence.json"), &evidence)
		for _, e := range evidence {
			rules = append(rules, rule{callee, e.Caller, e.Method, e.Route})
			ids[callee], ids[e.Caller] = true, true
			pairs[[2]string{e.Caller, callee}] = true
		}
	}
	routes := map[string]bool{}
	for _, r := range rules {
		routes[r.route] = true
	}
	for _, h := range hostile {
		require.True(t, routes[h], "the exporter did not learn %s: %v", h, routes)
	}
	require.False(t, routes[refused])

	ctx, events := openBrowser(t)
	url := "file://" + index
	var nodes []string
	var edges [][2]string
	var shown string
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible("#filter", chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("svg .node")).map(n => n.querySelector("title").textContent)`, &nodes),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("svg .edge")).map(e => {
			const id = n => document.querySelector('svg .node[data-n="' + n + '"] title').textContent;
			return [id(e.dataset.a), id(e.dataset.b)];
		})`, &edges),
		chromedp.Text("#shown", &shown, chromedp.ByID),
	))
	// The script ran: the Content-Security-Policy allowed it by its hash.
	assert.Equal(t, fmt.Sprintf("%d of %d rules shown", len(rules), len(rules)), shown)
	gotIDs := map[string]bool{}
	for _, n := range nodes {
		gotIDs[n] = true
	}
	assert.Len(t, nodes, len(ids), "one node per identity: %v", nodes)
	assert.Equal(t, ids, gotIDs)
	gotPairs := map[[2]string]bool{}
	for _, e := range edges {
		gotPairs[e] = true
	}
	assert.Len(t, edges, len(pairs), "one edge per caller and callee: %v", edges)
	assert.Equal(t, pairs, gotPairs)

	// The hostile paths are text in their cells; nothing they could have
	// made exists, and hovering everything runs nothing.
	var cells []string
	var made int
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Evaluate(`Array.from(document.querySelectorAll("tbody td code")).map(c => c.textContent)`, &cells),
		chromedp.Evaluate(`document.querySelectorAll("img, iframe, object, embed, [onmouseover], [onerror], [onclick]").length +
			document.querySelectorAll("script").length - 1`, &made),
		chromedp.Evaluate(`document.querySelectorAll("*").forEach(e => {
			e.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
			e.dispatchEvent(new MouseEvent("mouseenter"));
		}); true`, nil),
	))
	for _, h := range hostile {
		assert.Contains(t, cells, h)
	}
	assert.Zero(t, made, "elements or handlers the observed values made")

	// A screenshot of the page as it opens, for a person to look at.
	var png []byte
	require.NoError(t, chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)))
	shot := filepath.Join(t.ArtifactDir(), "review-page.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)
	if stable := os.Getenv("OTELCOL_AUTHZ_SCREENSHOT"); stable != "" {
		require.NoError(t, os.MkdirAll(filepath.Dir(stable), 0o755))
		require.NoError(t, os.WriteFile(stable, png, 0o644))
		t.Logf("screenshot also written to %s", stable)
	}

	// Typing in the filter hides the rows that do not match, and dims the
	// graph's other nodes.
	const term = "payments"
	want := 0
	for _, r := range rules {
		if strings.Contains(strings.ToLower(r.callee+" "+r.caller+" "+r.method+" "+r.route), term) {
			want++
		}
	}
	require.Positive(t, want)
	require.Less(t, want, len(rules))
	var visible int
	var dimmed []string
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SendKeys("#filter", term, chromedp.ByID),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("tbody tr")).filter(r => r.getClientRects().length > 0).length`, &visible),
		chromedp.Evaluate(`Array.from(document.querySelectorAll("svg .node.dim")).map(n => n.querySelector("title").textContent)`, &dimmed),
		chromedp.Text("#shown", &shown, chromedp.ByID),
	))
	assert.Equal(t, want, visible, "rows shown for %q", term)
	assert.Equal(t, fmt.Sprintf("%d of %d rules shown", want, len(rules)), shown)
	assert.Equal(t, []string{balances}, dimmed, "only balances neither matches nor takes part in a row shown")

	dialogs, errs, requests := events.snapshot()
	assert.Empty(t, dialogs, "dialogs opened")
	assert.Empty(t, errs, "errors in the page")
	require.NotEmpty(t, requests)
	for _, r := range requests {
		assert.True(t, r == url || strings.HasPrefix(r, "data:"), "a request left the page: %s", r)
	}
}
