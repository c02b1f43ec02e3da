package authzctl

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
)

// difference is what diff finds; --json prints it as it is.
type difference struct {
	OldRevision string         `json:"old_revision"`
	NewRevision string         `json:"new_revision"`
	Equal       bool           `json:"equal"`
	Callees     []calleeChange `json:"callees"`
	Operator    ruleChanges    `json:"operator_rules"`
	Settings    []setting      `json:"settings"`
}

// calleeChange is what changed for one callee: its mode and its learned
// rules, sorted by caller, method and route.
type calleeChange struct {
	Callee  string       `json:"callee"`
	Mode    *modeChange  `json:"mode,omitempty"`
	Added   []accessRule `json:"added"`
	Removed []accessRule `json:"removed"`
}

type modeChange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type accessRule struct {
	Caller string `json:"caller"`
	Method string `json:"method"`
	Route  string `json:"route"`
	// Except is what the route leaves out (render.Rule.ExceptText): a
	// change there is a change of what the rule grants.
	Except string `json:"except,omitempty"`
}

// ruleChanges are the operator rules added and removed, as written.
type ruleChanges struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// setting is a value of the policy's data besides grants, callees and
// operator rules (unseen_callees, trust_domains, modes) that changed.
type setting struct {
	Name string          `json:"name"`
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

func diffCommand(e *env) func() (int, error) {
	e.positionalUsage = "OLD NEW"
	e.commandDescription = `Lists what bundle NEW changes compared with bundle OLD, per callee: its
mode, and the learned rules added (+) and removed (-), each with its caller;
then the operator's allow and deny rules, then other settings of the policy.
Exit status: 0 when both grant the same, 1 when they differ, 2 bad input.`
	asJSON := e.flags.Bool("json", false, "print one JSON object")
	return func() (int, error) {
		if len(e.positional) != 2 {
			return 0, badUsage("want two bundles, OLD and NEW, not %d arguments", len(e.positional))
		}
		old, err := e.load(e.positional[0])
		if err != nil {
			return 0, err
		}
		next, err := e.load(e.positional[1])
		if err != nil {
			return 0, err
		}
		d := compare(old, next)
		if err := e.print(*asJSON, d, d.write); err != nil {
			return 0, err
		}
		if d.Equal {
			return exitOK, nil
		}
		return exitNo, nil
	}
}

// compare lists what next changes compared with old.
func compare(old, next *loaded) *difference {
	d := &difference{OldRevision: old.revision(), NewRevision: next.revision(), Callees: []calleeChange{}, Settings: []setting{}}
	before, after := accessSets(old), accessSets(next)
	callees := map[string]bool{}
	for _, m := range []map[string]map[accessRule]bool{before, after} {
		for c := range m {
			callees[c] = true
		}
	}
	for c := range old.published.Modes {
		callees[c] = true
	}
	for c := range next.published.Modes {
		callees[c] = true
	}
	for _, callee := range slices.Sorted(maps.Keys(callees)) {
		cc := calleeChange{Callee: callee, Added: []accessRule{}, Removed: []accessRule{}}
		from, to := modeOf(old, callee), modeOf(next, callee)
		if from != to {
			cc.Mode = &modeChange{From: from, To: to}
		}
		for r := range after[callee] {
			if !before[callee][r] {
				cc.Added = append(cc.Added, r)
			}
		}
		for r := range before[callee] {
			if !after[callee][r] {
				cc.Removed = append(cc.Removed, r)
			}
		}
		slices.SortFunc(cc.Added, compareAccess)
		slices.SortFunc(cc.Removed, compareAccess)
		if cc.Mode != nil || len(cc.Added) > 0 || len(cc.Removed) > 0 {
			d.Callees = append(d.Callees, cc)
		}
	}
	d.Operator = operatorChanges(old, next)
	d.Settings = settingChanges(old, next, d.Operator)
	d.Equal = len(d.Callees) == 0 && len(d.Operator.Added) == 0 && len(d.Operator.Removed) == 0 && len(d.Settings) == 0
	return d
}

func compareAccess(a, b accessRule) int {
	return cmp.Or(strings.Compare(a.Caller, b.Caller), strings.Compare(a.Method, b.Method), strings.Compare(a.Route, b.Route), strings.Compare(a.Except, b.Except))
}

// accessSets are a bundle's learned rules by callee.
func accessSets(l *loaded) map[string]map[accessRule]bool {
	out := map[string]map[accessRule]bool{}
	for _, r := range l.published.Rules {
		if out[r.Destination] == nil {
			out[r.Destination] = map[accessRule]bool{}
		}
		out[r.Destination][accessRule{Caller: r.Source, Method: r.Method, Route: r.Route.String(), Except: r.ExceptText()}] = true
	}
	return out
}

func modeOf(l *loaded, callee string) string {
	if m, ok := l.published.Modes[callee]; ok {
		return string(m)
	}
	return review.ModeUnseen
}

// operatorChanges compares the operator rules of both bundles by their
// text, position aside: moving a rule changes nothing it grants.
func operatorChanges(old, next *loaded) ruleChanges {
	rc := ruleChanges{Added: []string{}, Removed: []string{}}
	texts := func(l *loaded) map[string]bool {
		out := map[string]bool{}
		for _, kind := range []string{"allow", "deny"} {
			rules, _ := at(l.bundle.Data, "envoy", "authz", "overrides", kind).([]any)
			for i, r := range rules {
				op := readOperatorRule(kind, i, r)
				out[kind+" "+op.body()] = true
			}
		}
		return out
	}
	before, after := texts(old), texts(next)
	for t := range after {
		if !before[t] {
			rc.Added = append(rc.Added, t)
		}
	}
	for t := range before {
		if !after[t] {
			rc.Removed = append(rc.Removed, t)
		}
	}
	slices.Sort(rc.Added)
	slices.Sort(rc.Removed)
	return rc
}

// settingChanges compares the rest of data.envoy.authz: what the grants,
// callees and operator rules leave, such as unseen_callees.
func settingChanges(old, next *loaded, operator ruleChanges) []setting {
	skip := map[string]bool{"grants": true, "callees": true, "overrides": true}
	a, _ := at(old.bundle.Data, "envoy", "authz").(map[string]any)
	b, _ := at(next.bundle.Data, "envoy", "authz").(map[string]any)
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	out := []setting{}
	for _, k := range slices.Sorted(maps.Keys(names)) {
		if !skip[k] {
			out = appendChanged(out, k, a[k], b[k])
		}
	}
	// A callee's entry decides more than its mode (the operator rules that
	// apply to it): any other change of it is one too, but for the
	// operator rules added or removed, listed already.
	listed := map[string]bool{}
	for _, t := range slices.Concat(operator.Added, operator.Removed) {
		listed[t] = true
	}
	ca, _ := a["callees"].(map[string]any)
	cb, _ := b["callees"].(map[string]any)
	ids := map[string]bool{}
	for id := range ca {
		ids[id] = true
	}
	for id := range cb {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		out = appendChanged(out, "callees["+id+"]", calleeEntry(a, ca[id], listed), calleeEntry(b, cb[id], listed))
	}
	// The policy is the exporter's constant module: another module, or
	// another text of it, decides otherwise whatever the data says. Paths
	// aside: a directory's modules are named by where it lies.
	return appendChanged(out, "modules", moduleDigests(old), moduleDigests(next))
}

// appendChanged adds the setting name to out when from and to differ.
func appendChanged(out []setting, name string, from, to any) []setting {
	// encoding/json sorts object keys: equal values encode alike.
	f, _ := json.Marshal(from)
	t, _ := json.Marshal(to)
	if string(f) != string(t) {
		out = append(out, setting{Name: name, From: f, To: t})
	}
	return out
}

// calleeEntry is a callee's entry but its mode, which diff reports apart,
// with the operator rules it applies by what they say, not where they are
// in the file: moving a rule changes nothing. The rules in listed are
// left out.
func calleeEntry(authz map[string]any, entry any, listed map[string]bool) any {
	m, ok := entry.(map[string]any)
	if !ok {
		return entry
	}
	m = maps.Clone(m)
	delete(m, "mode")
	for _, kind := range []string{"allow", "deny"} {
		idx, ok := m[kind].([]any)
		if !ok {
			continue
		}
		rules, _ := at(authz, "overrides", kind).([]any)
		texts := make([]string, 0, len(idx))
		for _, v := range idx {
			i, ok := v.(json.Number)
			n, err := i.Int64()
			if !ok || err != nil || n < 0 || int(n) >= len(rules) {
				texts = append(texts, fmt.Sprint(v))
				continue
			}
			if t := readOperatorRule(kind, int(n), rules[n]).body(); !listed[kind+" "+t] {
				texts = append(texts, t)
			}
		}
		slices.Sort(texts)
		if m[kind] = texts; len(texts) == 0 {
			delete(m, kind) // as if it had none
		}
	}
	if len(m) == 0 {
		return nil // nothing but a mode: a callee new or gone is its mode change
	}
	return m
}

// moduleDigests are the SHA-256 digests of a bundle's Rego modules, sorted.
func moduleDigests(l *loaded) []string {
	out := make([]string, 0, len(l.bundle.Modules))
	for _, m := range l.bundle.Modules {
		sum := sha256.Sum256(m.Raw)
		out = append(out, "sha256:"+hex.EncodeToString(sum[:]))
	}
	slices.Sort(out)
	return out
}

// write prints the difference for a pull request: a header per callee,
// its mode change, then - and + lines sorted by caller, method and route.
func (d *difference) write(w io.Writer) {
	fmt.Fprintf(w, "revision %s -> %s\n", d.OldRevision, d.NewRevision)
	if d.Equal {
		fmt.Fprintln(w, "no changes")
		return
	}
	var added, removed, modes int
	for _, c := range d.Callees {
		fmt.Fprintf(w, "\ncallee %s\n", c.Callee)
		if c.Mode != nil {
			fmt.Fprintf(w, "  mode %s -> %s\n", c.Mode.From, c.Mode.To)
			modes++
		}
		type line struct {
			sign string
			r    accessRule
		}
		var lines []line
		for _, r := range c.Removed {
			lines = append(lines, line{"-", r})
		}
		for _, r := range c.Added {
			lines = append(lines, line{"+", r})
		}
		slices.SortStableFunc(lines, func(a, b line) int { return compareAccess(a.r, b.r) })
		for _, l := range lines {
			route := l.r.Route
			if l.r.Except != "" {
				route += " except " + l.r.Except
			}
			fmt.Fprintf(w, "  %s %s %s  from %s\n", l.sign, l.r.Method, route, l.r.Caller)
		}
		added += len(c.Added)
		removed += len(c.Removed)
	}
	if len(d.Operator.Added)+len(d.Operator.Removed) > 0 {
		fmt.Fprintln(w, "\noperator rules")
		for _, t := range d.Operator.Removed {
			fmt.Fprintln(w, "  - "+t)
		}
		for _, t := range d.Operator.Added {
			fmt.Fprintln(w, "  + "+t)
		}
	}
	if len(d.Settings) > 0 {
		fmt.Fprintln(w, "\nsettings")
		for _, s := range d.Settings {
			fmt.Fprintf(w, "  %s %s -> %s\n", s.Name, s.From, s.To)
		}
	}
	fmt.Fprintf(w, "\n%d added, %d removed, %d mode changes, %d operator rule changes, %d setting changes\n",
		added, removed, modes, len(d.Operator.Added)+len(d.Operator.Removed), len(d.Settings))
}
