package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/headerjson"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/xfcc"
)

// reason says why a span was not learned; it is the `reason` attribute of
// the skipped-spans metric.
type reason uint8

const (
	learned reason = iota
	reasonNoIdentity
	reasonMalformedXFCC
	reasonMalformedHeaders
	reasonInvalidIdentity
	reasonAmbiguousIdentity
	reasonUntrustedDomain
	reasonNoMethod
	reasonInvalidMethod
	reasonNoPath
	reasonInvalidPath
	reasonPathTraversal
	reasonPathTooLong
	reasonRedactedPath
	reasonDeniedStatus
	reasonInvalidStatus
	reasonExpired
	reasonAggregateFull
	numReasons
)

var reasonNames = [numReasons]string{
	learned:                 "learned",
	reasonNoIdentity:        "no_identity",
	reasonMalformedXFCC:     "malformed_xfcc",
	reasonMalformedHeaders:  "malformed_headers",
	reasonInvalidIdentity:   "invalid_identity",
	reasonAmbiguousIdentity: "ambiguous_identity",
	reasonUntrustedDomain:   "untrusted_domain",
	reasonNoMethod:          "no_method",
	reasonInvalidMethod:     "invalid_method",
	reasonNoPath:            "no_path",
	reasonInvalidPath:       "invalid_path",
	reasonPathTraversal:     "path_traversal",
	reasonPathTooLong:       "path_too_long",
	reasonRedactedPath:      "redacted_path",
	reasonDeniedStatus:      "denied_status",
	reasonInvalidStatus:     "invalid_status",
	reasonExpired:           "expired",
	reasonAggregateFull:     "aggregate_full",
}

func (r reason) String() string { return reasonNames[r] }

// xfccHeader is the header's name as Envoy writes it.
const xfccHeader = "x-forwarded-client-cert"

// extractor turns a span into an observed access.
type extractor struct {
	attrs   AttributesConfig
	domains map[string]bool // empty: any trust domain
	skip    map[int64]bool
	learner *route.Learner
	window  time.Duration
	bucket  time.Duration
}

func newExtractor(cfg *Config) (*extractor, error) {
	l, err := route.NewLearner(cfg.Routes.Templates, cfg.Routes.MaxPathLength, cfg.Routes.MaxSegments)
	if err != nil {
		return nil, err
	}
	skip := make(map[int64]bool, len(cfg.SkipStatusCodes))
	for _, c := range cfg.SkipStatusCodes {
		skip[int64(c)] = true
	}
	domains := make(map[string]bool, len(cfg.TrustDomains))
	for _, td := range cfg.TrustDomains {
		domains[td] = true
	}
	return &extractor{attrs: cfg.Attributes, skip: skip, learner: l, window: cfg.Window, bucket: cfg.TimeBucket, domains: domains}, nil
}

// observe returns the access a span shows, or why it shows none.
func (x *extractor) observe(res pcommon.Map, span ptrace.Span, now time.Time) (aggregate.Record, reason) {
	attrs := span.Attributes()
	if v, ok := lookup(x.attrs.StatusCode, attrs, res); ok {
		code, ok := statusCode(v)
		switch {
		case !ok:
			// A status that says nothing might hide a refusal.
			return aggregate.Record{}, reasonInvalidStatus
		case x.skip[code]:
			return aggregate.Record{}, reasonDeniedStatus
		}
	}
	seen := span.EndTimestamp().AsTime()
	if span.EndTimestamp() == 0 || seen.After(now) {
		// No end time: seen now. A clock in the future must not keep access
		// alive past the window.
		seen = now
	}
	if seen.Before(now.Add(-x.window)) {
		return aggregate.Record{}, reasonExpired
	}

	dst, src, why := x.identities(attrs, res)
	if why != learned {
		return aggregate.Record{}, why
	}
	if !x.trusted(dst, src) {
		return aggregate.Record{}, reasonUntrustedDomain
	}

	mv, ok := lookup(x.attrs.Method, attrs, res)
	if !ok || mv.Str() == "" {
		return aggregate.Record{}, reasonNoMethod
	}
	method := mv.Str()
	if !route.ValidMethod(method) {
		return aggregate.Record{}, reasonInvalidMethod
	}

	path, ok := x.path(attrs, res)
	if !ok {
		return aggregate.Record{}, reasonNoPath
	}
	var instrumented string
	if v, ok := lookup(x.attrs.Route, attrs, res); ok && v.Type() == pcommon.ValueTypeStr {
		instrumented = v.Str()
	}
	rt, err := x.learner.Learn(path, instrumented)
	switch {
	case errors.Is(err, route.ErrTraversal):
		return aggregate.Record{}, reasonPathTraversal
	case errors.Is(err, route.ErrTooLong):
		return aggregate.Record{}, reasonPathTooLong
	case errors.Is(err, route.ErrRedacted):
		return aggregate.Record{}, reasonRedactedPath
	case err != nil:
		return aggregate.Record{}, reasonInvalidPath
	}
	return aggregate.Record{
		Key:   aggregate.Key{Destination: dst, Source: src, Method: method, Route: rt.String()},
		Stats: aggregate.Stats{Count: 1, FirstSeen: seen, LastSeen: seen, Buckets: 1 << (uint64(seen.UnixNano()/int64(x.bucket)) % 64)},
	}, learned
}

// trusted reports whether both identities are in the allowed trust domains.
func (x *extractor) trusted(dst, src string) bool {
	return len(x.domains) == 0 || x.domains[spiffeid.TrustDomain(dst)] && x.domains[spiffeid.TrustDomain(src)]
}

// identities finds the current hop's callee and caller: from the raw header,
// else from a JSON header map, else from the By/URI pair.
func (x *extractor) identities(attrs, res pcommon.Map) (dst, src string, why reason) {
	if v, ok := lookup(x.attrs.XFCC, attrs, res); ok {
		return hop(headerValue(v))
	}
	if v, ok := lookup(x.attrs.RequestHeaders, attrs, res); ok {
		h, found, err := headerjson.Find(valueString(v), xfccHeader)
		if err != nil {
			return "", "", reasonMalformedHeaders
		}
		if found {
			return hop(h)
		}
	}
	by, okBy := lookup(x.attrs.XFCCBy, attrs, res)
	uri, okURI := lookup(x.attrs.XFCCURI, attrs, res)
	if !okBy || !okURI {
		return "", "", reasonNoIdentity
	}
	dst = trimKey(valueString(by), "by=")
	src = trimKey(valueString(uri), "uri=")
	if dst == "" || src == "" {
		return "", "", reasonNoIdentity
	}
	if spiffeid.Validate(dst) != nil || spiffeid.Validate(src) != nil {
		return "", "", reasonInvalidIdentity
	}
	return dst, src, learned
}

func hop(header string) (dst, src string, why reason) {
	dst, src, err := xfcc.Hop(header)
	switch {
	case err == nil:
		return dst, src, learned
	case errors.Is(err, xfcc.ErrNoIdentity):
		return "", "", reasonNoIdentity
	case errors.Is(err, xfcc.ErrAmbiguousIdentity):
		return "", "", reasonAmbiguousIdentity
	case errors.Is(err, xfcc.ErrInvalidIdentity):
		return "", "", reasonInvalidIdentity
	default:
		return "", "", reasonMalformedXFCC
	}
}

// path returns the request path, from a path attribute or a URL.
func (x *extractor) path(attrs, res pcommon.Map) (string, bool) {
	if v, ok := lookup(x.attrs.Path, attrs, res); ok && valueString(v) != "" {
		return valueString(v), true
	}
	v, ok := lookup(x.attrs.URL, attrs, res)
	if !ok {
		return "", false
	}
	u := valueString(v)
	if strings.HasPrefix(u, "/") {
		return u, true
	}
	// scheme://authority/path: keep the raw path, as Envoy would see it.
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 && rest[i] == '/' {
		return rest[i:], true
	}
	return "/", true
}

// lookup returns the first named attribute, on the span or its resource.
func lookup(names []string, attrs, res pcommon.Map) (pcommon.Value, bool) {
	for _, n := range names {
		if v, ok := attrs.Get(n); ok {
			return v, true
		}
		if v, ok := res.Get(n); ok {
			return v, true
		}
	}
	return pcommon.Value{}, false
}

// valueString reads a string attribute; Pixie sends text that is not valid
// UTF-8 as bytes.
func valueString(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str()
	case pcommon.ValueTypeBytes:
		return string(v.Bytes().AsRaw())
	}
	return ""
}

// headerValue reads a header attribute: a string, or a string array (the
// semantic conventions' form) whose values are joined as repeated headers.
func headerValue(v pcommon.Value) string {
	if v.Type() != pcommon.ValueTypeSlice {
		return valueString(v)
	}
	s := v.Slice()
	parts := make([]string, 0, s.Len())
	for i := 0; i < s.Len(); i++ {
		parts = append(parts, valueString(s.At(i)))
	}
	return strings.Join(parts, ",")
}

// trimKey removes a case-insensitive "Key=" prefix.
func trimKey(s, key string) string {
	if len(s) >= len(key) && strings.EqualFold(s[:len(key)], key) {
		return s[len(key):]
	}
	return s
}

func statusCode(v pcommon.Value) (int64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int(), true
	case pcommon.ValueTypeStr:
		c, err := strconv.ParseInt(v.Str(), 10, 64)
		return c, err == nil
	case pcommon.ValueTypeDouble:
		return int64(v.Double()), true
	}
	return 0, false
}
