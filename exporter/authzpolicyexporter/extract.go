package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/headerjson"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/status"
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
	reasonNotServerSpan
	reasonTruncatedHeader
	reasonExpired
	reasonAggregateFull
	reasonCallerFull
	reasonNotInSpec
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
	reasonNotServerSpan:     "not_server_span",
	reasonTruncatedHeader:   "truncated_header",
	reasonExpired:           "expired",
	reasonAggregateFull:     "aggregate_full",
	reasonCallerFull:        "caller_full",
	reasonNotInSpec:         "not_in_spec",
}

func (r reason) String() string { return reasonNames[r] }

// Header names as Envoy and gRPC write them.
const (
	xfccHeader        = "x-forwarded-client-cert"
	grpcStatusHeader  = "grpc-status"
	contentTypeHeader = "content-type"
)

// extractor turns a span into an observed access.
type extractor struct {
	attrs       AttributesConfig
	domains     map[string]bool // empty: any trust domain
	skip        map[int]bool
	skipGRPC    map[int]bool
	unspecified bool         // learn spans without a kind
	cuts        map[int]bool // truncation limits
	learner     *route.Learner
	specs       *specSet
	window      time.Duration
	bucket      time.Duration
	names       attrNames
	batches     sync.Pool // of *batch, for their buffers
	// arenaPerSpan is what the last batch put in its arena, per span.
	arenaPerSpan atomic.Int64
}

func newExtractor(cfg *Config) (*extractor, error) {
	l, err := route.NewLearner(cfg.Routes.Templates, cfg.Routes.MaxPathLength, cfg.Routes.MaxSegments)
	if err != nil {
		return nil, err
	}
	specs, err := cfg.specs()
	if err != nil {
		return nil, err
	}
	return &extractor{
		specs:       specs,
		attrs:       cfg.Attributes,
		skip:        set(cfg.SkipStatusCodes),
		skipGRPC:    set(cfg.SkipGRPCStatusCodes),
		unspecified: cfg.LearnUnspecifiedKind,
		cuts:        set(cfg.TruncationLimits),
		learner:     l,
		window:      cfg.Window,
		bucket:      cfg.TimeBucket,
		domains:     set(cfg.TrustDomains),
		names:       newAttrNames(cfg.Attributes),
	}, nil
}

// batch is what the spans of one batch share: their resource's attributes
// and outcome, read once for all its spans, and a buffer that the strings
// of their records point into (routes, headers that had to be unescaped),
// so that a span costs no allocation of its own. The aggregate copies the
// strings it keeps.
type batch struct {
	x          *extractor
	span, res  attrIndex
	resOutcome outcome
	arena      strings.Builder
	key        []byte
	// hops are the headers read so far and what they say: a client's
	// header differs only in the callee it calls, spans repeat it.
	hops map[string]hopResult
	// records are the accesses the batch showed.
	records []aggregate.Record
}

type hopResult struct {
	dst, src string
	why      reason
}

// hop is hop for a header of the batch.
func (b *batch) hop(header string) (dst, src string, why reason) {
	if r, ok := b.hops[header]; ok {
		return r.dst, r.src, r.why
	}
	dst, src, why = hop(header)
	b.hops[header] = hopResult{dst, src, why}
	return dst, src, why
}

// newBatch returns a batch for spans, to be given back with done once its
// records were observed.
func (x *extractor) newBatch(spans int) *batch {
	b, _ := x.batches.Get().(*batch)
	if b == nil {
		b = &batch{x: x, span: newAttrIndex(&x.names), res: newAttrIndex(&x.names), hops: map[string]hopResult{}}
	}
	b.records = slices.Grow(b.records[:0], spans)
	// The arena is never reused: records of earlier batches may still
	// point into it. It is made as large as the last batches needed.
	b.arena = strings.Builder{}
	b.arena.Grow(int(x.arenaPerSpan.Load())*spans + 64)
	return b
}

// done gives b back for another batch.
func (b *batch) done() {
	if n := len(b.records); n > 0 {
		b.x.arenaPerSpan.Store(int64(min(b.arena.Len()/n+1, 1024)))
	}
	clear(b.records)
	clear(b.hops)
	b.arena = strings.Builder{}
	b.x.batches.Put(b)
}

// resource starts the spans of a resource.
func (b *batch) resource(res pcommon.Map) {
	b.res.read(&b.x.names, res)
	b.resOutcome = b.x.outcome(&b.res)
}

// keep returns a copy of s that stays valid as long as the batch's records.
func (b *batch) keep(s []byte) string {
	start := b.arena.Len()
	b.arena.Write(s)
	return b.arena.String()[start:]
}

// lookup returns the first named attribute of f, on the span or its
// resource.
func (b *batch) lookup(f field) (pcommon.Value, bool) {
	n := &b.x.names
	for s := n.first[f]; s < n.first[f+1]; s++ {
		if v, ok := b.span.get(s); ok {
			return v, true
		}
		if v, ok := b.res.get(s); ok {
			return v, true
		}
	}
	return pcommon.Value{}, false
}

func set[K comparable](items []K) map[K]bool {
	m := make(map[K]bool, len(items))
	for _, it := range items {
		m[it] = true
	}
	return m
}

// observe returns the access a span of b's current resource shows, or
// why it shows none.
func (b *batch) observe(span ptrace.Span, now time.Time) (aggregate.Record, reason) {
	x := b.x
	switch span.Kind() {
	case ptrace.SpanKindServer:
	case ptrace.SpanKindUnspecified:
		if !x.unspecified {
			return aggregate.Record{}, reasonNotServerSpan
		}
	default:
		// A client's own outbound call may carry the XFCC header it
		// received: learning it would teach its calls as access to itself.
		return aggregate.Record{}, reasonNotServerSpan
	}
	b.span.read(&x.names, span.Attributes())
	o := x.outcome(&b.span)
	o.merge(b.resOutcome)
	if o.why != learned {
		return aggregate.Record{}, o.why
	}
	rpc := &o.rpc
	seen := span.EndTimestamp().AsTime()
	if span.EndTimestamp() == 0 || seen.After(now) {
		// No end time: seen now. A clock in the future must not keep access
		// alive past the window.
		seen = now
	}
	if seen.Before(now.Add(-x.window)) {
		return aggregate.Record{}, reasonExpired
	}

	dst, src, why := b.identities(rpc)
	if why != learned {
		return aggregate.Record{}, why
	}
	if rpc.call && !rpc.status {
		// A gRPC or Connect call answers refusals with HTTP 200: without
		// its own status, its outcome is unknown.
		return aggregate.Record{}, reasonInvalidStatus
	}
	if !x.trusted(dst, src) {
		return aggregate.Record{}, reasonUntrustedDomain
	}

	mv, ok := b.lookup(fieldMethod)
	if !ok || mv.Str() == "" {
		return aggregate.Record{}, reasonNoMethod
	}
	method := mv.Str()
	if !route.ValidMethod(method) {
		return aggregate.Record{}, reasonInvalidMethod
	}

	path, ok := b.path()
	if !ok {
		return aggregate.Record{}, reasonNoPath
	}
	var instrumented string
	if v, ok := b.lookup(fieldRoute); ok && v.Type() == pcommon.ValueTypeStr {
		instrumented = v.Str()
	}
	var err error
	var origin route.Origin
	var wild bool
	b.key, origin, wild, err = x.learner.AppendKey(b.key[:0], path, instrumented, rpc.call)
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
	// The learner has checked the path (length, dot segments, literals);
	// an operation of the callee's spec, if it is one, gives its route.
	if e := x.specs.find(dst); e != nil {
		if op, segs, ok := matchSpec(e.spec(), method, path); ok {
			b.key, wild = op.AppendKey(b.key[:0], segs)
			origin = route.OpenAPI
		} else if e.strict {
			return aggregate.Record{}, reasonNotInSpec
		}
	}
	var values uint64
	if wild {
		values = aggregate.ValueBit(route.TrimQuery(path))
	}
	return aggregate.Record{
		Key: aggregate.Key{Destination: dst, Source: src, Method: method, Route: b.keep(b.key)},
		Stats: aggregate.Stats{
			Count: 1, FirstSeen: seen, LastSeen: seen,
			Buckets: 1 << (uint64(seen.UnixNano()/int64(x.bucket)) % 64),
			Values:  values, Origin: uint8(origin),
		},
	}, learned
}

// rpcEvidence is what a span says about the RPC it carries: whether it is
// a gRPC or Connect call, and whether it has an RPC status.
type rpcEvidence struct{ call, status bool }

// outcome is what the statuses of a span, or of its resource, say.
type outcome struct {
	why reason // learned, reasonDeniedStatus or reasonInvalidStatus
	rpc rpcEvidence
}

// worse keeps the most restrictive reason: a refusal, then a status that
// says nothing (which might hide one).
func (o *outcome) worse(r reason) {
	if o.why != reasonDeniedStatus {
		o.why = r
	}
}

// merge adds what p says: the span's statuses and its resource's count
// alike.
func (o *outcome) merge(p outcome) {
	if p.why != learned {
		o.worse(p.why)
	}
	o.rpc.call = o.rpc.call || p.rpc.call
	o.rpc.status = o.rpc.status || p.rpc.status
}

// outcome reads every status in one attribute map, HTTP and RPC, and what
// shows an RPC call: rpc.system, a content type, an RPC status.
func (x *extractor) outcome(m *attrIndex) outcome {
	var o outcome
	// Accepted codes are small (0-16, 100-599), so int holds them.
	judge := func(code int64, ok bool, skip map[int]bool) {
		switch {
		case !ok:
			o.worse(reasonInvalidStatus)
		case skip[int(code)]:
			o.worse(reasonDeniedStatus)
		}
	}
	each := func(f field, fn func(pcommon.Value)) { x.names.each(f, m, fn) }
	each(fieldStatusCode, func(v pcommon.Value) {
		c, ok := status.HTTP(v)
		judge(c, ok, x.skip)
	})
	each(fieldGRPCStatusCode, func(v pcommon.Value) {
		o.rpc.status = true
		c, ok := status.GRPC(v)
		judge(c, ok, x.skipGRPC)
	})
	each(fieldRPCSystem, func(v pcommon.Value) {
		o.rpc.call = o.rpc.call || rpcSystem(v.Str())
	})
	each(fieldContentType, func(v pcommon.Value) {
		eachString(v, func(ct string) { o.rpc.call = o.rpc.call || rpcContent(ct) })
	})
	each(fieldResponseHeaders, func(v pcommon.Value) {
		names := [2]string{grpcStatusHeader, contentTypeHeader}
		var code string
		codes := 0
		err := headerjson.FindEach(valueString(v), names[:], nil, func(i int, h string) {
			if i == 0 {
				code = h
				codes++
			} else {
				o.rpc.call = o.rpc.call || rpcContent(h)
			}
		})
		switch {
		case err != nil || codes > 1:
			// A cut or broken header map may hide the grpc-status, and
			// two of them say nothing.
			o.worse(reasonInvalidStatus)
		case codes == 1:
			o.rpc.status = true
			c, ok := status.GRPCText(code)
			judge(c, ok, x.skipGRPC)
		}
	})
	return o
}

// rpcSystem reports an RPC system that answers refusals with HTTP 200:
// gRPC (grpc, grpc_web) and Connect.
func rpcSystem(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "grpc") || s == "connect_rpc" || s == "connectrpc"
}

// rpcContent reports a gRPC or Connect streaming content type
// (application/grpc, application/grpc+proto, application/grpc-web,
// application/connect+proto...).
func rpcContent(contentType string) bool {
	return hasPrefixFold(contentType, "application/grpc") || hasPrefixFold(contentType, "application/connect+")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// trusted reports whether both identities are in the allowed trust domains.
func (x *extractor) trusted(dst, src string) bool {
	return len(x.domains) == 0 || x.domains[spiffeid.TrustDomain(dst)] && x.domains[spiffeid.TrustDomain(src)]
}

// identities finds the current hop's callee and caller: from the raw header,
// else from a JSON header map, else from the By/URI pair. A request map's
// content type is noted in rpc, whichever of them names the identities.
// A value that may have been cut is never read for identities: with
// APPEND_FORWARD the element Envoy appended for the current hop is the one
// a cut removes, and what is left ends with the client's own element.
func (b *batch) identities(rpc *rpcEvidence) (dst, src string, why reason) {
	x := b.x
	raw, hasRaw := b.lookup(fieldXFCC)
	if v, ok := b.lookup(fieldRequestHeaders); ok && (!hasRaw || !rpc.status) {
		doc := valueString(v)
		var h header
		names := [2]string{xfccHeader, contentTypeHeader}
		err := headerjson.FindEach(doc, names[:], &b.arena, func(i int, part string) {
			if i == 1 {
				rpc.call = rpc.call || rpcContent(part)
				return
			}
			h.add(part, x.cut(part))
		})
		switch {
		case hasRaw:
			// Read for its content type only.
		case x.cutText(doc) || errors.Is(err, headerjson.ErrTruncated):
			return "", "", reasonTruncatedHeader
		case err != nil:
			return "", "", reasonMalformedHeaders
		case x.cutHeader(h):
			return "", "", reasonTruncatedHeader
		case h.parts > 0:
			return b.hop(h.value)
		}
	}
	if hasRaw {
		var h header
		eachString(raw, func(part string) { h.add(part, x.cut(part)) })
		if x.cutHeader(h) {
			return "", "", reasonTruncatedHeader
		}
		return b.hop(h.value)
	}
	by, okBy := b.lookup(fieldXFCCBy)
	uri, okURI := b.lookup(fieldXFCCURI)
	if !okBy || !okURI {
		return "", "", reasonNoIdentity
	}
	dst = trimKey(valueString(by), "by=")
	src = trimKey(valueString(uri), "uri=")
	if x.cut(valueString(by)) || x.cut(valueString(uri)) {
		return "", "", reasonTruncatedHeader
	}
	if dst == "" || src == "" {
		return "", "", reasonNoIdentity
	}
	if spiffeid.Validate(dst) != nil || spiffeid.Validate(src) != nil {
		return "", "", reasonInvalidIdentity
	}
	return dst, src, learned
}

// header gathers a header's values, as repeated headers are joined, and
// whether any of them may have been cut.
type header struct {
	value string
	parts int
	cut   bool
}

// cutHeader reports whether a value of h, or their join, may have been cut.
func (x *extractor) cutHeader(h header) bool {
	return h.cut || h.parts > 1 && x.cut(h.value)
}

func (h *header) add(part string, cut bool) {
	if h.parts == 0 {
		h.value = part
	} else {
		h.value += "," + part
	}
	h.parts++
	h.cut = h.cut || cut
}

// hop reads the current hop of a header. Envoy writes only ASCII (URI and
// DNS SANs are IA5 strings, Subject is escaped, certificates URL-encoded):
// other bytes were written by a client, and they also make a cut header's
// length say nothing (a decoder replaces a cut character, SDKs count
// characters or UTF-16 units), so such a header teaches nothing.
func hop(header string) (dst, src string, why reason) {
	if !isASCII(header) {
		return "", "", reasonMalformedXFCC
	}
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
func (b *batch) path() (string, bool) {
	if v, ok := b.lookup(fieldPath); ok && valueString(v) != "" {
		return valueString(v), true
	}
	v, ok := b.lookup(fieldURL)
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

// pixieCut is what Pixie appends to a value it cut (its header maps at
// 8 KiB, bodies).
const pixieCut = "... [TRUNCATED]"

// cut reports whether s may have been truncated: it ends with Pixie's
// marker, or is exactly as long as a truncation limit. Lengths are bytes;
// for the ASCII an identity header must be (see hop), bytes are characters
// too.
func (x *extractor) cut(s string) bool {
	return x.cuts[len(s)] || strings.HasSuffix(s, pixieCut)
}

// cutText is cut for text that may hold other characters, such as a whole
// header map: SDKs count characters, processors bytes.
func (x *extractor) cutText(s string) bool {
	return x.cut(s) || !isASCII(s) && x.cuts[utf8.RuneCountInString(s)]
}

func isASCII(s string) bool {
	// Eight bytes at a time, as the compiler loads them in one.
	for ; len(s) >= 8; s = s[8:] {
		if (uint64(s[0])|uint64(s[1])<<8|uint64(s[2])<<16|uint64(s[3])<<24|
			uint64(s[4])<<32|uint64(s[5])<<40|uint64(s[6])<<48|uint64(s[7])<<56)&0x8080808080808080 != 0 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
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

// eachString calls f with a string attribute's value, or with each value of
// a string array (the semantic conventions' form of a header).
func eachString(v pcommon.Value, f func(string)) {
	if v.Type() != pcommon.ValueTypeSlice {
		f(valueString(v))
		return
	}
	s := v.Slice()
	for i := 0; i < s.Len(); i++ {
		f(valueString(s.At(i)))
	}
}

// trimKey removes a case-insensitive "Key=" prefix.
func trimKey(s, key string) string {
	if hasPrefixFold(s, key) {
		return s[len(key):]
	}
	return s
}

// maxVersionLen bounds a workload version kept per callee.
const maxVersionLen = 256

// version returns the workload version a resource announces, or "".
func (x *extractor) version(res pcommon.Map) string {
	for _, name := range x.attrs.Version {
		if v, ok := res.Get(name); ok && v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
			if len(v.Str()) > maxVersionLen {
				return ""
			}
			return v.Str()
		}
	}
	return ""
}
