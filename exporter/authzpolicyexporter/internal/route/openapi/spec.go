// Package openapi reads an OpenAPI document (3.0, 3.1, or Swagger 2.0
// converted to 3.0; YAML or JSON) and turns its operations into route
// templates of the route package: what a spec says a callee's API is.
//
// A path parameter becomes a slot whose kind follows its schema:
//
//	enum (or, in 3.1, const)         exactly those values
//	boolean                          exactly "false" or "true"
//	integer (any format)             route.Int (digits: negative numbers do not match)
//	string with format uuid          route.UUID
//	any other string, number, a      route.Token
//	schema of several types or of
//	allOf/oneOf/anyOf, no schema
//
// Every path is prefixed with the base path of its server URL (the
// operation's, the path item's, else the document's first one; server
// variables take their defaults); Swagger 2.0's basePath the same.
//
// An operation the route package cannot express exactly is not an
// operation of the Spec: a segment that mixes a parameter with literal text
// (/files/{name}.json, /{a}-{b}), an enum value that cannot be one path
// segment, a schema of objects or arrays. Such operations are listed in
// Spec.Refused with the reason, so a caller can log them; a request to
// them matches no operation of the Spec rather than a wider one that was
// guessed. External $refs (to other files or URLs) are refused: a spec is
// one self-contained file.
package openapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// Errors of Load and Parse, for errors.Is; the error text says more.
var (
	ErrUnreadable  = errors.New("cannot read spec")
	ErrNotOpenAPI  = errors.New("not an OpenAPI document")
	ErrInvalid     = errors.New("invalid OpenAPI document")
	ErrUndeclared  = errors.New("path parameter not declared")
	ErrUnsupported = errors.New("not supported")
)

// MaxSpecBytes bounds the size of a spec file.
const MaxSpecBytes = 16 << 20

// MaxOperations bounds the operations of one spec.
const MaxOperations = 10000

// MaxEnumRoutes bounds the routes one operation grants a caller: an
// operation's enums are granted whole (see Operation.Alternatives), one
// route per combination of their values, so an operation whose enums have
// more combinations is refused.
const MaxEnumRoutes = 64

// Kind is the kind of a Slot.
type Kind uint8

// The kinds of slots.
const (
	Literal  Kind = iota + 1 // exactly Slot.Lit
	Wildcard                 // any value of Slot.Type
	Enum                     // exactly one of Slot.Values
)

// Slot is one path segment of an operation.
type Slot struct {
	Kind Kind
	// Lit is a literal segment as a request sends it (percent-escaped
	// where it must be).
	Lit string
	// Type is a Wildcard's type.
	Type route.Type
	// Values are an Enum's values as a request sends them: sorted, without
	// duplicates, integers in decimal.
	Values []string
	// Param is the parameter's name, for a Wildcard or an Enum.
	Param string
}

// Matches reports whether the slot admits the raw segment s.
func (s *Slot) Matches(seg string) bool {
	switch s.Kind {
	case Literal:
		return s.Lit == seg
	case Wildcard:
		return s.Type.Matches(seg)
	case Enum:
		_, ok := slices.BinarySearch(s.Values, seg)
		return ok
	}
	return false
}

// Operation is one method on one path of a spec.
type Operation struct {
	// Method is upper case, as requests carry it.
	Method string
	// Path is the path as the spec writes it, without the base path.
	Path string
	// ID is the operationId, if any.
	ID string
	// Segments are the base path's literals, then the path's slots.
	Segments []Slot
}

// Template returns the route template the operation grants. Literals and
// wildcards are the route's own; an enum position holds a route.Token
// wildcard in the route and its values in enums, keyed by the segment's
// index: the route alone is wider than the operation there, and a policy
// must check both.
func (op *Operation) Template() (r route.Route, enums map[int][]string) {
	r = make(route.Route, len(op.Segments))
	for i, s := range op.Segments {
		switch s.Kind {
		case Literal:
			r[i].Lit = s.Lit
		case Wildcard:
			r[i].Wild = s.Type
		case Enum:
			r[i].Wild = route.Token
			if enums == nil {
				enums = make(map[int][]string)
			}
			enums[i] = s.Values
		}
	}
	return r, enums
}

// AppendKey appends to key the route an operation grants for the
// request whose raw segments are segs: the operation's literals and typed
// wildcards, and at an enum position the value the request sent (one of
// the enum's, or the operation would not have matched); Alternatives gives
// the routes of the enum's other values. It reports whether the route has
// a wildcard.
func (op *Operation) AppendKey(key []byte, segs []string) ([]byte, bool) {
	wild := false
	for i := range op.Segments {
		s := &op.Segments[i]
		key = append(key, '/')
		switch s.Kind {
		case Literal:
			key = append(key, s.Lit...)
		case Wildcard:
			key = append(key, '{')
			key = append(key, s.Type.String()...)
			key = append(key, '}')
			wild = true
		case Enum:
			key = append(key, segs[i]...)
		}
	}
	return key, wild
}

// combinations is the number of routes the operation's enums make, capped
// just above MaxEnumRoutes.
func (op *Operation) combinations() int {
	n := 1
	for i := range op.Segments {
		if s := &op.Segments[i]; s.Kind == Enum {
			n = min(n*len(s.Values), MaxEnumRoutes+1)
		}
	}
	return n
}

// enumSizes says how many values each enum has, for a refusal.
func (op *Operation) enumSizes() string {
	var parts []string
	for i := range op.Segments {
		if s := &op.Segments[i]; s.Kind == Enum {
			parts = append(parts, fmt.Sprintf("%s: %d values", s.Param, len(s.Values)))
		}
	}
	return strings.Join(parts, ", ")
}

// HasEnum reports whether the operation has an enum position.
func (op *Operation) HasEnum() bool {
	return slices.ContainsFunc(op.Segments, func(s Slot) bool { return s.Kind == Enum })
}

// Alternatives returns the other routes that the operation granting
// route r of method grants with it: r with the other values of the
// operation's enums, every combination (fewer than MaxEnumRoutes), but
// those whose every request an operation before it takes (see Taken). A
// caller that used the operation is granted the whole operation, as a
// {int} grants every integer.
func (s *Spec) Alternatives(method string, r route.Route) []route.Route {
	op := s.owner(method, r)
	if op == nil {
		return nil
	}
	var at []int
	for i := range op.Segments {
		if op.Segments[i].Kind == Enum {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil
	}
	var out []route.Route
	alt := slices.Clone(r)
	idx := make([]int, len(at))
	for {
		same := true
		for j, i := range at {
			alt[i] = route.Segment{Lit: op.Segments[i].Values[idx[j]]}
			same = same && alt[i] == r[i]
		}
		if !same {
			if _, whole := s.before(method, op, alt); !whole {
				out = append(out, slices.Clone(alt))
			}
		}
		// The next combination, the last enum fastest.
		j := len(at) - 1
		for ; j >= 0; j-- {
			if idx[j]++; idx[j] < len(op.Segments[at[j]].Values) {
				break
			}
			idx[j] = 0
		}
		if j < 0 {
			return out
		}
	}
}

// String is the operation's method and template, enums as {a|b}.
func (op *Operation) String() string {
	var b strings.Builder
	b.WriteString(op.Method)
	b.WriteByte(' ')
	for _, s := range op.Segments {
		b.WriteByte('/')
		switch s.Kind {
		case Literal:
			b.WriteString(s.Lit)
		case Wildcard:
			b.WriteString("{" + s.Type.String() + "}")
		case Enum:
			b.WriteString("{" + strings.Join(s.Values, "|") + "}")
		}
	}
	return b.String()
}

// match reports whether the operation admits the raw segments segs.
func (op *Operation) match(segs []string) bool {
	if len(segs) != len(op.Segments) {
		return false
	}
	for i := range op.Segments {
		if !op.Segments[i].Matches(segs[i]) {
			return false
		}
	}
	return true
}

// Refusal is an operation of the document that is not an operation of the
// Spec, and why.
type Refusal struct {
	Method, Path string
	Reason       string
}

// Spec is what a document says the operations of an API are.
type Spec struct {
	// Name is the file (or the name given to Parse).
	Name string
	// Version is the document's openapi (or swagger) field.
	Version string
	// Operations are in matching order: where two could match one request,
	// the earlier one wins (see Match).
	Operations []Operation
	// Refused are the document's operations that are not expressible.
	Refused []Refusal

	// byShape indexes Operations by method and segment count.
	byShape map[shape][]int
	digest  [32]byte
}

type shape struct {
	method string
	n      int
}

// Load reads the spec in file.
func Load(file string) (*Spec, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("openapi spec %s: %w: %w", file, ErrUnreadable, unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("openapi spec %s: %w: %w", file, ErrUnreadable, unwrapPathError(err))
	}
	return Parse(data, file)
}

// unwrapPathError drops the file name from an *os.PathError, which the
// caller's message already states.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse reads a spec from data, at most MaxSpecBytes; name is what errors
// call it.
func Parse(data []byte, name string) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("openapi spec %s: %w: larger than %d bytes", name, ErrUnreadable, MaxSpecBytes)
	}
	s, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("openapi spec %s: %w", name, err)
	}
	s.Name = name
	s.digest = sha256.Sum256(data)
	return s, nil
}

func parse(data []byte) (*Spec, error) {
	var head struct {
		OpenAPI any `yaml:"openapi"`
		Swagger any `yaml:"swagger"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: neither YAML nor JSON: %v", ErrNotOpenAPI, err)
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	loader.Context = context.Background()
	var doc *openapi3.T
	var version string
	switch {
	case head.Swagger != nil:
		version = fmt.Sprint(head.Swagger)
		if version != "2.0" {
			return nil, fmt.Errorf("%w: swagger %q, want 2.0", ErrNotOpenAPI, version)
		}
		var doc2 openapi2.T
		if err := openapi2.UnmarshalFromData(data, &doc2); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		var err error
		doc, err = openapi2conv.ToV3WithLoader(&doc2, loader, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	case head.OpenAPI != nil:
		version = fmt.Sprint(head.OpenAPI)
		if !strings.HasPrefix(version, "3.") {
			return nil, fmt.Errorf("%w: openapi %q, want 3.x", ErrNotOpenAPI, version)
		}
		var err error
		doc, err = loader.LoadFromData(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	default:
		return nil, fmt.Errorf("%w: no openapi or swagger field", ErrNotOpenAPI)
	}
	s := &Spec{Version: version}
	// Declared parameters are checked first, for an error that names the
	// operation and the parameter.
	if err := s.addOperations(doc); err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context, openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.index()
	return s, nil
}

// addOperations turns the document's operations into s's, in the order of
// their paths and methods.
func (s *Spec) addOperations(doc *openapi3.T) error {
	if doc.Paths == nil {
		return nil
	}
	paths := doc.Paths.Keys()
	slices.Sort(paths)
	for _, p := range paths {
		item := doc.Paths.Value(p)
		if item == nil {
			continue
		}
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		slices.Sort(methods)
		for _, m := range methods {
			op, err := operation(doc, p, item, strings.ToUpper(m), ops[m])
			var refused refusal
			switch {
			case errors.As(err, &refused):
				s.Refused = append(s.Refused, Refusal{Method: strings.ToUpper(m), Path: p, Reason: string(refused)})
				continue
			case err != nil:
				return err
			}
			if len(s.Operations) == MaxOperations {
				return fmt.Errorf("%w: more than %d operations", ErrUnsupported, MaxOperations)
			}
			s.Operations = append(s.Operations, op)
		}
	}
	return nil
}

// refusal is the reason an operation is refused, not the spec.
type refusal string

func (r refusal) Error() string { return string(r) }

// operation returns the Operation of method on path p, a refusal when it
// cannot be expressed, or an error that makes the whole spec invalid.
func operation(doc *openapi3.T, p string, item *openapi3.PathItem, method string, o *openapi3.Operation) (Operation, error) {
	op := Operation{Method: method, Path: p, ID: o.OperationID}
	where := method + " " + p
	if !route.ValidMethod(method) {
		return op, refusal(fmt.Sprintf("method %q is not an HTTP method the policy can match", method))
	}
	servers := doc.Servers
	if len(item.Servers) > 0 {
		servers = item.Servers
	}
	if o.Servers != nil && len(*o.Servers) > 0 {
		servers = *o.Servers
	}
	base, err := basePath(servers)
	if err != nil {
		return op, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
	}
	op.Segments = base

	params := pathParams(item.Parameters, o.Parameters)
	if !strings.HasPrefix(p, "/") {
		return op, fmt.Errorf("%w: path %q must start with /", ErrInvalid, p)
	}
	used := make(map[string]bool, len(params))
	for _, seg := range strings.Split(p[1:], "/") {
		open := strings.IndexByte(seg, '{')
		if open < 0 && strings.IndexByte(seg, '}') < 0 {
			lit, ok := literal(seg)
			if !ok {
				return op, refusal(fmt.Sprintf("segment %q cannot be a literal path segment", seg))
			}
			op.Segments = append(op.Segments, Slot{Kind: Literal, Lit: lit})
			continue
		}
		if open != 0 || !strings.HasSuffix(seg, "}") || strings.Count(seg, "{") != 1 || strings.Count(seg, "}") != 1 {
			// Check what is declared even here: a spec with an
			// undeclared parameter is invalid, refused or not.
			for _, name := range templateNames(seg) {
				if _, ok := params[name]; !ok {
					return op, fmt.Errorf("%w: %s: %q is not a path parameter of the operation", ErrUndeclared, where, name)
				}
				used[name] = true
			}
			return op, refusal(fmt.Sprintf("segment %q mixes parameters with text: a route segment is one literal or one parameter", seg))
		}
		name := seg[1 : len(seg)-1]
		param, ok := params[name]
		if !ok {
			return op, fmt.Errorf("%w: %s: %q is not a path parameter of the operation", ErrUndeclared, where, name)
		}
		used[name] = true
		slot, err := paramSlot(param)
		if err != nil {
			return op, err
		}
		op.Segments = append(op.Segments, slot)
	}
	for _, name := range sortedKeys(params) {
		if !used[name] {
			return op, fmt.Errorf("%w: %s: path parameter %q is not in the path", ErrInvalid, where, name)
		}
	}
	if len(op.Segments) > route.MaxSegments {
		return op, refusal(fmt.Sprintf("more than %d segments", route.MaxSegments))
	}
	if n := op.combinations(); n > MaxEnumRoutes {
		return op, refusal(fmt.Sprintf("its enum values make more than %d routes per caller (%s); "+
			"declare the parameter a string to learn it as {token}", MaxEnumRoutes, op.enumSizes()))
	}
	return op, nil
}

// templateNames returns the names of the {parameters} in a segment.
func templateNames(seg string) []string {
	var names []string
	for {
		i := strings.IndexByte(seg, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(seg[i:], '}')
		if j < 0 {
			return names
		}
		names = append(names, seg[i+1:i+j])
		seg = seg[i+j+1:]
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pathParams returns the path parameters of an operation by name: the
// path item's, overridden by the operation's of the same name and location.
func pathParams(lists ...openapi3.Parameters) map[string]*openapi3.Parameter {
	params := make(map[string]*openapi3.Parameter)
	for _, list := range lists {
		for _, ref := range list {
			if ref == nil || ref.Value == nil {
				continue
			}
			// Only path parameters are kept, so overriding by name here
			// is overriding by name and location.
			if p := ref.Value; p.In == openapi3.ParameterInPath {
				params[p.Name] = p
			}
		}
	}
	return params
}

// basePath returns the literal slots of the path of servers[0]'s URL.
func basePath(servers openapi3.Servers) ([]Slot, error) {
	if len(servers) == 0 || servers[0] == nil {
		return nil, nil
	}
	srv := servers[0]
	for name := range srv.Variables {
		if v := srv.Variables[name]; v == nil || v.Default == "" && strings.Contains(srv.URL, "{"+name+"}") {
			return nil, fmt.Errorf("server variable %q has no default", name)
		}
	}
	if strings.HasPrefix(srv.URL, "//") {
		// A network-path reference names a host, not a first segment.
		abs := *srv
		abs.URL = "http:" + srv.URL
		srv = &abs
	}
	bp, err := srv.BasePath()
	if err != nil {
		return nil, fmt.Errorf("server url %q: %v", servers[0].URL, err)
	}
	if strings.ContainsAny(bp, "{}") {
		return nil, fmt.Errorf("server url %q: variable without a definition", servers[0].URL)
	}
	bp = strings.Trim(bp, "/")
	if bp == "" {
		return nil, nil
	}
	var slots []Slot
	for _, seg := range strings.Split(bp, "/") {
		lit, ok := literal(seg)
		if !ok || seg == "" {
			return nil, fmt.Errorf("server url %q: segment %q cannot be a literal path segment", servers[0].URL, seg)
		}
		slots = append(slots, Slot{Kind: Literal, Lit: lit})
	}
	return slots, nil
}

// literal returns s as a request carries it in one segment: as written
// when the route package accepts it as a literal, else percent-escaped
// (spaces, non-ASCII), and false when neither is a literal (a dot segment,
// an escaped separator).
func literal(s string) (string, bool) {
	for _, c := range [...]string{s, url.PathEscape(s)} {
		if r, err := route.ParseKey("/" + c); err == nil && len(r) == 1 && r[0].Wild == 0 {
			return c, true
		}
	}
	return "", false
}

// paramSlot returns the slot of a path parameter.
func paramSlot(p *openapi3.Parameter) (Slot, error) {
	slot := Slot{Kind: Wildcard, Type: route.Token, Param: p.Name}
	if p.Schema == nil || p.Schema.Value == nil {
		return slot, nil
	}
	sc := p.Schema.Value
	values := sc.Enum
	if sc.Const != nil {
		values = []any{sc.Const}
	}
	if len(values) == 0 && sc.Type != nil && sc.Type.Is(openapi3.TypeBoolean) {
		values = []any{false, true}
	}
	if len(values) > 0 {
		slot.Kind, slot.Type = Enum, 0
		for _, v := range values {
			text, ok := enumText(v)
			if !ok {
				if v == nil {
					continue // null: no path segment is null
				}
				return slot, refusal(fmt.Sprintf("parameter %q: enum value %v is not a string, integer or boolean", p.Name, v))
			}
			lit, ok := literal(text)
			if !ok || text == "" {
				return slot, refusal(fmt.Sprintf("parameter %q: enum value %q cannot be one path segment", p.Name, text))
			}
			slot.Values = append(slot.Values, lit)
		}
		slices.Sort(slot.Values)
		slot.Values = slices.Compact(slot.Values)
		if len(slot.Values) == 0 {
			return slot, refusal(fmt.Sprintf("parameter %q: enum admits no path segment", p.Name))
		}
		return slot, nil
	}
	var types []string
	if sc.Type != nil {
		for _, t := range sc.Type.Slice() {
			if t != openapi3.TypeNull {
				types = append(types, t)
			}
		}
	}
	if len(types) != 1 {
		return slot, nil // any type, or several: one segment of any value
	}
	switch types[0] {
	case openapi3.TypeInteger:
		slot.Type = route.Int
	case openapi3.TypeString:
		if sc.Format == "uuid" {
			slot.Type = route.UUID
		}
	case openapi3.TypeNumber:
	default:
		return slot, refusal(fmt.Sprintf("parameter %q: a path segment cannot be of type %s", p.Name, types[0]))
	}
	return slot, nil
}

// enumText is an enum value as a path carries it.
func enumText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10), true
		}
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	}
	return "", false
}

// index sorts the operations into matching order and indexes them.
func (s *Spec) index() {
	slices.SortStableFunc(s.Operations, compareOps)
	s.byShape = make(map[shape][]int)
	for i := range s.Operations {
		op := &s.Operations[i]
		k := shape{op.Method, len(op.Segments)}
		s.byShape[k] = append(s.byShape[k], i)
	}
}

// rank orders slots for matching: literals before enums before wildcards,
// narrower wildcard types before wider ones.
func rank(s *Slot) int {
	switch s.Kind {
	case Literal:
		return 0
	case Enum:
		return 1
	}
	return 1 + int(s.Type)
}

// compareOps orders operations so that, of two that match one request, the
// one that is more concrete at the first segment where they differ comes
// first (OpenAPI: concrete paths match before templated ones). The rest is
// for determinism.
func compareOps(a, b Operation) int {
	for i := 0; i < len(a.Segments) && i < len(b.Segments); i++ {
		if c := rank(&a.Segments[i]) - rank(&b.Segments[i]); c != 0 {
			return c
		}
	}
	if c := len(a.Segments) - len(b.Segments); c != 0 {
		return c
	}
	if c := strings.Compare(a.Method, b.Method); c != 0 {
		return c
	}
	return strings.Compare(a.Path, b.Path)
}

// Match returns the operation a request is: method as sent, path already
// normalized (no query; raw segments as the route package learns them).
// The base path is part of every operation, so a path outside it matches
// none. Where several operations admit the request, the most concrete wins:
// at the first segment where they differ, a literal over an enum over a
// typed wildcard, a narrower type over a wider one.
func (s *Spec) Match(method, path string) (*Operation, bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	n := strings.Count(path, "/")
	idx := s.byShape[shape{method, n}]
	if len(idx) == 0 {
		return nil, false
	}
	var buf [32]string
	segs := route.AppendSegments(buf[:0], path)
	for _, i := range idx {
		if op := &s.Operations[i]; op.match(segs) {
			return op, true
		}
	}
	return nil, false
}

// meets reports whether op and r admit some request in common.
func (op *Operation) meets(r route.Route) bool {
	if len(r) != len(op.Segments) {
		return false
	}
	for i := range op.Segments {
		s, want := &op.Segments[i], r[i]
		switch {
		case want.Wild == 0:
			if !s.Matches(want.Lit) {
				return false
			}
		case s.Kind == Literal:
			if !want.Wild.Matches(s.Lit) {
				return false
			}
		case s.Kind == Wildcard:
			if !route.Meet(want.Wild, s.Type) {
				return false
			}
		case !slices.ContainsFunc(s.Values, want.Wild.Matches):
			return false
		}
	}
	return true
}

// grants reports whether r is a route op grants: its template with, at
// each enum position, one of the enum's values.
func (op *Operation) grants(r route.Route) bool {
	if len(r) != len(op.Segments) {
		return false
	}
	for i := range op.Segments {
		s := &op.Segments[i]
		switch s.Kind {
		case Literal:
			if r[i].Wild != 0 || r[i].Lit != s.Lit {
				return false
			}
		case Wildcard:
			if r[i].Wild != s.Type {
				return false
			}
		case Enum:
			if r[i].Wild != 0 || !s.Matches(r[i].Lit) {
				return false
			}
		}
	}
	return true
}

// Taken returns what the spec's operations of method take of wildcard
// route r: the routes of r's requests each admits, so that r admits a
// request of its own exactly when none of them admits it too. For a route
// of an operation (operation set, and some operation grants r: the first
// that does is r's), those are the operations before it in matching
// order; for any other route, a heuristic one or one of an operation the
// spec no longer has, every operation. whole reports that one takes every
// request r admits.
func (s *Spec) Taken(method string, r route.Route, operation bool) (taken []route.Route, whole bool) {
	if op := s.owner(method, r); operation && op != nil {
		return s.before(method, op, r)
	}
	return s.before(method, nil, r)
}

// Owns reports whether route r of method is one of the spec's: a literal
// route some operation admits, a wildcard route an operation grants.
func (s *Spec) Owns(method string, r route.Route) bool {
	if !r.HasWildcard() {
		_, ok := s.Match(method, r.String())
		return ok
	}
	return s.owner(method, r) != nil
}

// EnumOperation names the operation with an enum that grants route r of
// method (Operation.String), if one does.
func (s *Spec) EnumOperation(method string, r route.Route) (string, bool) {
	op := s.owner(method, r)
	if op == nil || !op.HasEnum() {
		return "", false
	}
	return op.String(), true
}

// owner is the operation of method that grants r, the first in matching
// order, nil for none.
func (s *Spec) owner(method string, r route.Route) *Operation {
	for _, i := range s.byShape[shape{method, len(r)}] {
		if op := &s.Operations[i]; op.grants(r) {
			return op
		}
	}
	return nil
}

// Digest identifies the document the spec was read from.
func (s *Spec) Digest() [32]byte { return s.digest }

// before is Taken for r as a route of op, or of none with op nil.
func (s *Spec) before(method string, op *Operation, r route.Route) (taken []route.Route, whole bool) {
	for _, i := range s.byShape[shape{method, len(r)}] {
		o := &s.Operations[i]
		if o == op {
			break
		}
		at := len(taken)
		taken = o.within(r, taken)
		for _, t := range taken[at:] {
			whole = whole || slices.Equal(t, r)
		}
	}
	return taken, whole
}

// within appends to out the routes of r's requests op admits: at each of
// r's wildcards, op's literal, its enum values r's type admits, or the
// narrower of the two types. Nothing when op and r admit no request in
// common.
func (op *Operation) within(r route.Route, out []route.Route) []route.Route {
	// Most operations of a shape meet a route nowhere: find out before
	// copying anything. Past this, every position meets.
	if !op.meets(r) {
		return out
	}
	at := len(out)
	out = append(out, slices.Clone(r))
	for i := range op.Segments {
		s, want := &op.Segments[i], r[i]
		if want.Wild == 0 {
			continue
		}
		switch s.Kind {
		case Literal:
			for k := at; k < len(out); k++ {
				out[k][i] = route.Segment{Lit: s.Lit}
			}
		case Wildcard:
			if !route.Within(want.Wild, s.Type) {
				for k := at; k < len(out); k++ {
					out[k][i] = route.Segment{Wild: s.Type}
				}
			}
		case Enum:
			values := slices.DeleteFunc(slices.Clone(s.Values), func(v string) bool { return !want.Wild.Matches(v) })
			// Each route so far, once per value.
			n := len(out)
			for _, v := range values[1:] {
				for k := at; k < n; k++ {
					c := slices.Clone(out[k])
					c[i] = route.Segment{Lit: v}
					out = append(out, c)
				}
			}
			for k := at; k < n; k++ {
				out[k][i] = route.Segment{Lit: values[0]}
			}
		}
	}
	return out
}
