// Package overrides reads the operator rules file a team keeps in git.
// Learning only knows what traffic did; these rules say what must and what
// must never be possible whatever traffic did: allow rules pin access
// (granted, never expiring, marked as the operator's), deny rules forbid it
// (never granted, whatever was learned or allowed).
package overrides

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
)

const (
	maxSize  = 1 << 20
	maxRules = 10000
)

// Segment is one segment of a rule's route: exactly one of a literal, a
// typed wildcard, or Any (an untyped parameter: any one non-empty segment).
type Segment struct {
	Lit  string
	Wild route.Type
	Any  bool
}

// Route is a path template of a rule: its segments, then, with Rest, zero
// or more further segments of any kind (a trailing "/**").
type Route struct {
	Segments []Segment
	Rest     bool
	Text     string // as written
}

// Rule is one allow or deny rule.
type Rule struct {
	Callee, Caller spiffeid.Pattern
	Methods        []string // sorted, without duplicates; nil for any method
	Routes         []Route
	Line           int // of the rule in the file
}

// Set is the rules of one file.
type Set struct {
	Allow, Deny []Rule
}

// Load reads and parses the file at path.
func Load(path string) (*Set, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a rules file; name is what its errors call it. An empty file
// is an empty set. Parsing is strict: unknown or repeated keys, values of
// the wrong kind and anything the matchers could read two ways are errors
// that give the line.
func Parse(name string, data []byte) (*Set, error) {
	if len(data) > maxSize {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes", name, maxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Set{}, nil
		}
		return nil, yamlError(name, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, fmt.Errorf("%s:%d: more than one YAML document", name, next.Line)
	case !errors.Is(err, io.EOF):
		return nil, yamlError(name, err)
	}
	p := parser{name: name}
	return p.file(doc.Content[0])
}

// yamlError turns the decoder's "yaml: line N: reason" into "name:N: reason".
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, reason, ok := strings.Cut(rest, ": "); ok {
			if _, err := strconv.Atoi(n); err == nil {
				return fmt.Errorf("%s:%s: %s", name, n, reason)
			}
		}
	}
	return fmt.Errorf("%s: %s", name, msg)
}

type parser struct {
	name  string
	count int // rules so far, allow and deny
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) error {
	if path != "" {
		path += ": "
	}
	return fmt.Errorf("%s:%d: %s%s", p.name, n.Line, path, fmt.Sprintf(format, args...))
}

func (p *parser) file(root *yaml.Node) (*Set, error) {
	if isNull(root) {
		return &Set{}, nil
	}
	fields, err := p.fields(root, "", "allow", "deny")
	if err != nil {
		return nil, err
	}
	s := &Set{}
	if s.Allow, err = p.rules(fields["allow"], "allow"); err != nil {
		return nil, err
	}
	if s.Deny, err = p.rules(fields["deny"], "deny"); err != nil {
		return nil, err
	}
	return s, nil
}

// fields returns the values of mapping n by key, refusing keys not in
// known and keys given twice.
func (p *parser) fields(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, error) {
	if err := p.kind(n, path, yaml.MappingNode, "a mapping"); err != nil {
		return nil, err
	}
	out := make(map[string]*yaml.Node, len(known))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || !slices.Contains(known, k.Value) {
			return nil, p.errorf(k, path, "unknown key %.64q (want %s)", k.Value, strings.Join(known, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, p.errorf(k, path, "key %q given twice", k.Value)
		}
		out[k.Value] = v
	}
	return out, nil
}

func (p *parser) kind(n *yaml.Node, path string, kind yaml.Kind, what string) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return p.errorf(n, path, "aliases are not allowed")
	case n.Kind != kind:
		return p.errorf(n, path, "must be %s", what)
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (p *parser) rules(n *yaml.Node, path string) ([]Rule, error) {
	if n == nil || isNull(n) {
		return nil, nil
	}
	if err := p.kind(n, path, yaml.SequenceNode, "a list of rules"); err != nil {
		return nil, err
	}
	if p.count += len(n.Content); p.count > maxRules {
		return nil, p.errorf(n, path, "more than %d rules in the file", maxRules)
	}
	out := make([]Rule, len(n.Content))
	for i, item := range n.Content {
		var err error
		if out[i], err = p.rule(item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *parser) rule(n *yaml.Node, path string) (Rule, error) {
	fields, err := p.fields(n, path, "callee", "caller", "methods", "routes")
	if err != nil {
		return Rule{}, err
	}
	for _, key := range [...]string{"callee", "caller", "methods", "routes"} {
		if v := fields[key]; v == nil || isNull(v) {
			return Rule{}, p.errorf(n, path, "%s is required", key)
		}
	}
	r := Rule{Line: n.Line}
	if r.Callee, err = p.pattern(fields["callee"], path+".callee"); err != nil {
		return Rule{}, err
	}
	if r.Caller, err = p.pattern(fields["caller"], path+".caller"); err != nil {
		return Rule{}, err
	}
	if r.Methods, err = p.methods(fields["methods"], path+".methods"); err != nil {
		return Rule{}, err
	}
	if r.Routes, err = p.routes(fields["routes"], path+".routes"); err != nil {
		return Rule{}, err
	}
	return r, nil
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if err := p.kind(n, path, yaml.ScalarNode, "a string"); err != nil {
		return "", err
	}
	if n.ShortTag() != "!!str" {
		return "", p.errorf(n, path, "%.64q must be a string", n.Value)
	}
	return n.Value, nil
}

func (p *parser) pattern(n *yaml.Node, path string) (spiffeid.Pattern, error) {
	s, err := p.str(n, path)
	if err != nil {
		return spiffeid.Pattern{}, err
	}
	pat, err := spiffeid.ParsePattern(s)
	if err != nil {
		return spiffeid.Pattern{}, p.errorf(n, path, "%v", err)
	}
	return pat, nil
}

// list returns the strings of the non-empty sequence n.
func (p *parser) list(n *yaml.Node, path string) ([]*yaml.Node, error) {
	if err := p.kind(n, path, yaml.SequenceNode, "a list"); err != nil {
		return nil, err
	}
	if len(n.Content) == 0 {
		return nil, p.errorf(n, path, "must not be empty")
	}
	return n.Content, nil
}

func (p *parser) methods(n *yaml.Node, path string) ([]string, error) {
	items, err := p.list(n, path)
	if err != nil {
		return nil, err
	}
	var out []string
	anyMethod := false
	for _, item := range items {
		m, err := p.str(item, path)
		if err != nil {
			return nil, err
		}
		switch {
		case m == "*":
			anyMethod = true
		case !route.ValidMethod(m):
			return nil, p.errorf(item, path, "%.64q is not an upper-case HTTP method", m)
		default:
			out = append(out, m)
		}
	}
	if anyMethod {
		if out != nil {
			return nil, p.errorf(n, path, `"*" (any method) must stand alone`)
		}
		return nil, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (p *parser) routes(n *yaml.Node, path string) ([]Route, error) {
	items, err := p.list(n, path)
	if err != nil {
		return nil, err
	}
	out := make([]Route, len(items))
	for i, item := range items {
		s, err := p.str(item, path)
		if err != nil {
			return nil, err
		}
		if out[i], err = parseRoute(s); err != nil {
			return nil, p.errorf(item, path, "%v", err)
		}
	}
	return out, nil
}

// parseRoute parses a rule's route: route.ParseTemplate's syntax, where an
// untyped parameter is any one segment, and an optional trailing "/**".
func parseRoute(text string) (Route, error) {
	r := Route{Text: text}
	tpl, rest := strings.CutSuffix(text, "/**")
	if rest {
		r.Rest = true
		if tpl == "" {
			return r, nil
		}
	}
	if slices.Contains(strings.Split(tpl, "/"), "**") {
		return Route{}, fmt.Errorf(`route %.64q: "**" is allowed only as the last segment`, text)
	}
	segs, typed, err := route.ParseTemplateTyped(tpl)
	if err != nil {
		return Route{}, err
	}
	r.Segments = make([]Segment, len(segs))
	for i, s := range segs {
		switch {
		case s.Wild != 0 && !typed[i]:
			r.Segments[i].Any = true
		case s.Wild != 0:
			r.Segments[i].Wild = s.Wild
		default:
			r.Segments[i].Lit = s.Lit
		}
	}
	return r, nil
}
