package review

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/otelcol-authz/otelcol-authz/internal/browsertest"
)

// One callee called from many trust domains (federated meshes, or one
// caller identity per tenant domain): the graph stops collapsing at trust
// domains, so DefaultMaxNodes is no budget and the SVG draws one node and
// one edge per domain.
func TestRedteamPageNodeBudgetUnbounded(t *testing.T) {
	var rules []Rule
	for i := range 3000 {
		rules = append(rules, Rule{Callee: orders, Caller: fmt.Sprintf("spiffe://tenant-%d.example/ns/app/sa/client", i), Method: "GET", Route: "/orders"})
	}
	start := time.Now()
	p := Page(PageInput{Rules: rules})
	t.Logf("%d callers: %d bytes in %v", len(rules), len(p), time.Since(start))
	doc := parse(t, p)
	nodes := count(doc, func(n *html.Node) bool { return hasClass(n, "node") })
	assert.LessOrEqual(t, nodes, DefaultMaxNodes, "the graph draws %d nodes", nodes)
}

// Scale: 1000 callees with 10 callers each, and one callee with 10 000
// callers, render in well under a second per 10k rules, linearly in size.
func TestRedteamHoldsPageScale(t *testing.T) {
	for name, in := range map[string]PageInput{
		"1000 callees":        bigMesh(1000, 5, 10),
		"one callee, 10k ns":  oneCallee(10000, func(i int) string { return fmt.Sprintf("spiffe://example.org/ns/n%d/sa/c", i) }),
		"one callee, 10k ids": oneCallee(10000, func(i int) string { return fmt.Sprintf("spiffe://example.org/ns/a/sa/c%d", i) }),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			p := Page(in)
			d := time.Since(start)
			t.Logf("%d rules: %d bytes in %v", len(in.Rules), len(p), d)
			assert.Less(t, d, 10*time.Second)
			assert.Less(t, len(p), 2000*len(in.Rules))
			assert.Equal(t, p, Page(in), "deterministic")
		})
	}
}

func oneCallee(n int, caller func(int) string) PageInput {
	var rules []Rule
	for i := range n {
		rules = append(rules, Rule{Callee: orders, Caller: caller(i), Method: "GET", Route: "/orders/{int}", Origin: OriginLearned,
			FirstSeen: day, LastSeen: day, Count: 3, TimeBuckets: 1})
	}
	return PageInput{Rules: rules, Modes: map[string]ModeInfo{orders: {Mode: "enforce"}}}
}

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium")
	return ""
}

// browse opens the page in headless Chromium and returns what the script
// wrote into #shown, the dialogs and exceptions, and the document's
// scroll width beside the viewport's.
func browse(t *testing.T, p []byte, filter string) (shown string, events []string, scrollW, clientW int64) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "index.html")
	require.NoError(t, os.WriteFile(file, p, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx, cancelA := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chromiumPath(t)), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(browsertest.Profile(t)), chromedp.WindowSize(1400, 1000))
	defer cancelA()
	ctx, cancelT := chromedp.NewContext(ctx)
	defer cancelT()
	chromedp.ListenTarget(ctx, func(e any) {
		switch e := e.(type) {
		case *page.EventJavascriptDialogOpening:
			events = append(events, "dialog: "+e.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) }()
		case *runtime.EventExceptionThrown:
			events = append(events, "exception: "+e.ExceptionDetails.Error())
		}
	})
	actions := []chromedp.Action{runtime.Enable(), chromedp.Navigate("file://" + file), chromedp.WaitReady("body")}
	if filter != "" {
		var ok bool
		actions = append(actions, chromedp.Evaluate(fmt.Sprintf(`(function(){var i=document.getElementById("filter");i.value=%q;i.dispatchEvent(new Event("input"));return true})()`, filter), &ok))
	}
	actions = append(actions, chromedp.Sleep(200*time.Millisecond),
		chromedp.Evaluate(`document.getElementById("shown").textContent`, &shown),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollW),
		chromedp.Evaluate(`document.documentElement.clientWidth`, &clientW))
	require.NoError(t, chromedp.Run(ctx, actions...))
	return shown, events, scrollW, clientW
}

// Paths the exporter learns (route.checkLiteral admits ' & ; = and
// percent-escapes), a manifest revision authzctl report takes from any
// bundle, and markup in every free-text field: nothing runs, the page's
// own script still runs under its CSP (the filter counts rules), and
// filtering by a hostile route finds it.
func TestRedteamHoldsPageInChromium(t *testing.T) {
	hostile := []string{
		`/x/'onmouseover='alert(1)`, `/q/a&amp;b`, `/a;b=c`, `/%3Cscript%3Ealert(1)%3C/script%3E`,
		`/x/]]>`, `/x/--!>`, "/x/\u2028\u2029", "/x/\u202ealert",
	}
	var rules []Rule
	for _, r := range hostile {
		rules = append(rules, Rule{Callee: orders, Caller: frontend, Method: "GET", Route: r, Origin: OriginLearned})
	}
	in := PageInput{
		Revision: `</title><script>alert(1)</script><!--`,
		Rules:    rules,
		Modes:    map[string]ModeInfo{orders: {Mode: `"><img src=x onerror=alert(1)>`}},
		Changes: &ChangeLog{Removed: []Removed{{Callee: orders, Caller: frontend, Method: "GET", Route: `</script><script>alert(2)</script>`,
			Reason: `<svg onload=alert(3)>`, Into: `]]><script>alert(4)</script>`}}},
	}
	shown, events, _, _ := browse(t, Page(in), "")
	assert.Empty(t, events)
	assert.Equal(t, fmt.Sprintf("%d of %d rules shown", len(rules), len(rules)), shown, "the page's script ran")
	shown, events, _, _ = browse(t, Page(in), "onmouseover")
	assert.Empty(t, events)
	assert.Equal(t, fmt.Sprintf("1 of %d rules shown", len(rules)), shown)
}

// SPIFFE IDs may be 2048 bytes long, with no place to break: the table
// cells wrap them (overflow-wrap on code), but a long namespace is also a
// section heading (<h2>, "trust domain ns/<namespace>"), which does not
// wrap, and widens the whole page past the viewport.
func TestRedteamPageLongNamespaceOverflows(t *testing.T) {
	ns := strings.Repeat("n", 1900)
	callee := "spiffe://example.org/ns/" + ns + "/sa/api"
	p := Page(PageInput{Rules: []Rule{{Callee: callee, Caller: frontend, Method: "GET", Route: "/" + strings.Repeat("r", 1000)}}})
	_, events, scrollW, clientW := browse(t, p, "")
	assert.Empty(t, events)
	assert.LessOrEqual(t, scrollW, clientW, "the page is %dpx wide in a %dpx viewport", scrollW, clientW)
}
