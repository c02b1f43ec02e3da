package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/aggregate/shard"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/overrides"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/publish"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/spiffeid"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/status"
)

// Config is the exporter's configuration. Every key has a default that works
// with Pixie's span shapes and the OpenTelemetry semantic conventions.
type Config struct {
	// FlushInterval is how often the bundle is rendered and published; it
	// is also rendered once at shutdown.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// Window is how long access may go unseen before it is forgotten.
	Window time.Duration `mapstructure:"window"`
	// MaxEntries caps the aggregate; new accesses beyond it are dropped and
	// counted.
	MaxEntries int `mapstructure:"max_entries"`
	// MaxEntriesPerCaller caps the keys of one caller for one callee, so
	// that one caller's flood of distinct paths never stops the others
	// from being learned.
	MaxEntriesPerCaller int `mapstructure:"max_entries_per_caller"`
	// MaxEntriesPerSource caps the keys of one caller across all its
	// callees, so that one identity reaching many callees cannot fill
	// max_entries either.
	MaxEntriesPerSource int `mapstructure:"max_entries_per_source"`
	// SkipStatusCodes are responses whose requests are never learned:
	// traffic that was refused must not become allowed, and probes for
	// routes that do not exist (404, 405) must not become policy.
	SkipStatusCodes []int `mapstructure:"skip_status_codes"`
	// SkipGRPCStatusCodes are gRPC statuses whose calls are never learned:
	// gRPC answers a refused call with HTTP 200 and says so in its
	// grpc-status trailer.
	SkipGRPCStatusCodes []int `mapstructure:"skip_grpc_status_codes"`
	// LearnUnspecifiedKind also learns spans without a kind; spans of any
	// other kind than SERVER (a client's own outbound call, messaging,
	// internal work) are never learned.
	LearnUnspecifiedKind bool `mapstructure:"learn_unspecified_kind"`
	// TruncationLimits are the lengths (in bytes, or in characters) at which
	// some stage of the span pipeline cuts attribute values. An identity
	// header of exactly such a length may have lost its last element, the
	// only one Envoy vouches for, so it is never learned.
	TruncationLimits []int `mapstructure:"truncation_limits"`

	// MaxShrink is the largest share of the published allow rules that one
	// publication may remove for a reason other than window expiry; a
	// bundle removing more is held back. 1 turns the guard off.
	MaxShrink float64 `mapstructure:"max_shrink"`

	// MinObservations is how many times an access must be seen before it
	// is allowed.
	MinObservations int `mapstructure:"min_observations"`
	// MinTimeBuckets is how many distinct time buckets (of TimeBucket) an
	// access must be seen in before it is allowed: re-sent spans add
	// observations but not buckets. 0 or 1 turns this off.
	MinTimeBuckets int           `mapstructure:"min_time_buckets"`
	TimeBucket     time.Duration `mapstructure:"time_bucket"`
	// LearningPeriod is each callee's time in audit mode, counted from the
	// first time it was observed (kept in storage): its requests are all
	// allowed and those the learned policy would deny are marked. 0
	// enforces every callee from the first publication.
	LearningPeriod time.Duration `mapstructure:"learning_period"`
	// RelearnPeriod puts an enforced callee back in audit mode for this
	// long when its workload announces a new version (attributes::version),
	// so that the routes a release adds are learned. 0 turns it off.
	RelearnPeriod time.Duration `mapstructure:"relearn_period"`
	// UnseenCallees is what the policy does for a callee the bundle has no
	// grants or mode for (deployed since the last flush): audit or deny.
	// Empty: audit with a learning period, deny without. Only a callee
	// Envoy itself names (destination.principal), within trust_domains
	// when set, is treated as unseen; anything else is denied.
	UnseenCallees string `mapstructure:"unseen_callees"`
	// Modes are operator rules over callees, first match wins, above the
	// learning period and relearning.
	Modes []ModeConfig `mapstructure:"modes"`
	// OverridesFile is an operator rules file (allow and deny, see
	// internal/overrides), read at start and again whenever it changes.
	OverridesFile string `mapstructure:"overrides_file"`

	// TrustDomains, when not empty, are the only SPIFFE trust domains
	// learned: a span naming a caller or callee elsewhere is skipped.
	TrustDomains []string `mapstructure:"trust_domains"`

	// Storage names a storage extension (such as file_storage) that keeps
	// the aggregate across restarts.
	Storage *component.ID `mapstructure:"storage"`

	Output OutputConfig `mapstructure:"output"`
	// Serve hands what the output publishes to OPA over HTTP, so that the
	// sidecars need no object store; off without an endpoint.
	Serve      ServeConfig      `mapstructure:"serve"`
	Routes     RoutesConfig     `mapstructure:"routes"`
	Attributes AttributesConfig `mapstructure:"attributes"`
	// Signing, with a key_file, signs every bundle (see signing.go).
	Signing SigningConfig `mapstructure:"signing"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ModeConfig is an operator's mode for some callees.
type ModeConfig struct {
	// Callees are SPIFFE IDs or patterns: "*" is one path segment, a
	// trailing "/**" any rest, "*" alone every callee.
	Callees []string `mapstructure:"callees"`
	// Mode is audit or enforce.
	Mode string `mapstructure:"mode"`
}

// OutputConfig says where the bundle goes.
type OutputConfig struct {
	// URL of the directory or bucket prefix that receives bundle.tar.gz:
	// file:///DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or
	// azblob://CONTAINER/PREFIX, with gocloud.dev's query options (for S3:
	// region, endpoint, use_path_style).
	URL string `mapstructure:"url"`
	// Timeout bounds one publication, retries included.
	Timeout time.Duration `mapstructure:"timeout"`
	// KeepRevisions keeps this many earlier bundles as
	// PREFIX/revisions/<revision>.tar.gz in an object store, for rollback.
	KeepRevisions int `mapstructure:"keep_revisions"`
	// UnpackedDir, when set, also receives the bundle's files unpacked,
	// with one data.json per destination, for review in version control.
	// The directory is a valid bundle for `opa run --watch`.
	UnpackedDir string `mapstructure:"unpacked_dir"`
	// PerCallee also publishes, for each callee, a bundle with only its
	// grants (and the same policy) at callees/<trust domain>/<path>/
	// bundle.tar.gz below url, so that each sidecar holds its own callee's
	// rules alone (see deploy/opa-envoy/per-callee.yaml). The full bundle
	// stays.
	PerCallee bool `mapstructure:"per_callee"`
	// ReplicaID (for example ${env:POD_NAME}) makes this collector one of
	// the replicas sharing url: each writes its aggregate as a shard below
	// url/shards/ at every flush and renders the merge of all of them; the
	// lowest fresh replica id publishes (see replicas.go).
	ReplicaID string `mapstructure:"replica_id"`
	// ReplicaTimeout is how long a replica's shard may go unwritten before
	// the replica is taken for gone (another takes over publishing); 0:
	// three flush intervals.
	ReplicaTimeout time.Duration `mapstructure:"replica_timeout"`
}

// ServeConfig is the bundle server: any collector HTTP server's settings
// (endpoint, tls, auth, timeouts, ...) and how many long-polling OPAs it
// holds at once.
type ServeConfig struct {
	confighttp.ServerConfig `mapstructure:",squash"`
	// MaxWaiting caps the requests held for a new revision (OPA's long
	// polling) at once; beyond it a request is answered at once, which
	// sends that OPA back to its polling delay. 0 turns long polling off.
	MaxWaiting int `mapstructure:"max_waiting"`
}

// Unmarshal reads max_waiting, then gives the rest to the HTTP server's
// settings. Their own Unmarshal, which this one hides, ignores keys it does
// not know (it is made to be squashed into a larger struct): a key that is
// neither theirs nor max_waiting is refused here.
func (s *ServeConfig) Unmarshal(conf *confmap.Conf) error {
	raw := conf.ToStringMap()
	known := mapstructureKeys(reflect.TypeFor[confighttp.ServerConfig]())
	var unknown []string
	for k := range raw {
		if k != "max_waiting" && !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("has invalid keys: %s", strings.Join(unknown, ", "))
	}
	own := struct {
		MaxWaiting *int `mapstructure:"max_waiting"`
	}{MaxWaiting: &s.MaxWaiting}
	if err := conf.Unmarshal(&own, confmap.WithIgnoreUnused()); err != nil {
		return err
	}
	// The original conf, not raw: a map loses what an ${env:...} value
	// was as text, which string settings (tls::min_version) need.
	return s.ServerConfig.Unmarshal(conf)
}

// mapstructureKeys are the keys a struct is decoded from, with those of
// its squashed fields.
func mapstructureKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case !f.IsExported():
		case slices.Contains(strings.Split(opts, ","), "squash"):
			maps.Copy(keys, mapstructureKeys(f.Type))
		case name != "" && name != "-":
			keys[name] = true
		}
	}
	return keys
}

// enabled reports whether the bundle server is configured.
func (s *ServeConfig) enabled() bool { return s.NetAddr.Endpoint != "" }

// RoutesConfig controls how paths become routes.
type RoutesConfig struct {
	// Templates are route templates such as /users/{id:int}; a path that
	// matches one is learned as that template. A typed parameter keeps its
	// type; an untyped one (/users/{id}) takes the narrowest type of the
	// observed value. They win over the span's http.route and over the
	// heuristics.
	Templates []string `mapstructure:"templates"`
	// CardinalityThreshold is how many distinct values after the same
	// parent, for one caller, callee and method, make that position a
	// wildcard. 0 turns this off.
	CardinalityThreshold int `mapstructure:"cardinality_threshold"`
	// MaxPathLength and MaxSegments bound what is learned; longer paths
	// are skipped and counted.
	MaxPathLength int `mapstructure:"max_path_length"`
	MaxSegments   int `mapstructure:"max_segments"`
	// OpenAPI are API specs of callees: a request to a callee an entry
	// names that is an operation of its spec is learned as that
	// operation's template, before templates, http.route and the
	// heuristics. The first entry naming the callee is its spec.
	OpenAPI []OpenAPIConfig `mapstructure:"openapi"`
}

// OpenAPIConfig is one callee's API spec.
type OpenAPIConfig struct {
	// Callee is a SPIFFE ID or a pattern, as in modes.
	Callee string `mapstructure:"callee"`
	// Spec is the OpenAPI (3.0, 3.1) or Swagger 2.0 file, YAML or JSON.
	// It is read again when it changes; a bad new version keeps the last
	// good one.
	Spec string `mapstructure:"spec"`
	// Strict refuses to learn a request to the callee that is no
	// operation of the spec (counted with reason not_in_spec); without
	// it, such a request is learned as any other.
	Strict bool `mapstructure:"strict"`
}

// AttributesConfig names the span (or resource) attributes each field is
// read from, first match wins.
type AttributesConfig struct {
	// XFCC holds the raw x-forwarded-client-cert header (string or string
	// array).
	XFCC []string `mapstructure:"xfcc"`
	// RequestHeaders holds a JSON object of request headers (Pixie's
	// http.req_headers) with x-forwarded-client-cert in it.
	RequestHeaders []string `mapstructure:"request_headers"`
	// XFCCBy and XFCCURI hold the header's By and URI fields split apart,
	// as the PxL demo script exports them ("By=spiffe://...").
	XFCCBy  []string `mapstructure:"xfcc_by"`
	XFCCURI []string `mapstructure:"xfcc_uri"`
	// Method, Path, URL (used for its path when there is no Path), Route
	// (an instrumentation-given template) and StatusCode (every one
	// present is read; the most restrictive wins).
	Method     []string `mapstructure:"method"`
	Path       []string `mapstructure:"path"`
	URL        []string `mapstructure:"url"`
	Route      []string `mapstructure:"route"`
	StatusCode []string `mapstructure:"status_code"`
	// GRPCStatusCode holds a gRPC status, as a number or a code name; every
	// one present is read.
	GRPCStatusCode []string `mapstructure:"grpc_status_code"`
	// ResponseHeaders holds a JSON object of response headers (Pixie's
	// http.resp_headers), whose grpc-status is read like GRPCStatusCode.
	ResponseHeaders []string `mapstructure:"response_headers"`
	// RPCSystem names the RPC system, ContentType holds request or
	// response content types (strings or string arrays): a gRPC or
	// Connect call they show is learned only with its RPC status.
	RPCSystem   []string `mapstructure:"rpc_system"`
	ContentType []string `mapstructure:"content_type"`
	// Version names resource attributes whose value is the callee's
	// workload version; a new value starts relearning (relearn_period).
	Version []string `mapstructure:"version"`
}

var _ confmap.Validator = (*Config)(nil)

// Validate checks the configuration and names the offending key.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.FlushInterval <= 0 {
		errs = append(errs, errors.New("flush_interval must be positive"))
	}
	if cfg.Window <= 0 {
		errs = append(errs, errors.New("window must be positive"))
	}
	if cfg.MaxEntries <= 0 {
		errs = append(errs, errors.New("max_entries must be positive"))
	}
	if cfg.MaxEntriesPerCaller <= 0 {
		errs = append(errs, errors.New("max_entries_per_caller must be positive"))
	}
	if cfg.MaxEntriesPerSource <= 0 {
		errs = append(errs, errors.New("max_entries_per_source must be positive"))
	}
	for _, c := range cfg.SkipStatusCodes {
		if c < 100 || c > 599 {
			errs = append(errs, fmt.Errorf("skip_status_codes: %d is not an HTTP status code", c))
		}
	}
	for _, c := range cfg.SkipGRPCStatusCodes {
		if c < 0 || c > status.MaxGRPC {
			errs = append(errs, fmt.Errorf("skip_grpc_status_codes: %d is not a gRPC status code (0-16)", c))
		}
	}
	for _, n := range cfg.TruncationLimits {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("truncation_limits: %d must be positive", n))
		}
	}
	if cfg.MinObservations < 1 {
		errs = append(errs, errors.New("min_observations must be at least 1"))
	}
	if cfg.MinTimeBuckets < 0 || cfg.MinTimeBuckets > 64 {
		errs = append(errs, errors.New("min_time_buckets must be between 0 and 64"))
	}
	if cfg.TimeBucket <= 0 {
		errs = append(errs, errors.New("time_bucket must be positive"))
	}
	if cfg.LearningPeriod < 0 {
		errs = append(errs, errors.New("learning_period must not be negative"))
	}
	if cfg.LearningPeriod > 0 && cfg.Storage == nil && cfg.Output.ReplicaID == "" {
		// Without storage (or a replica's shard) every restart would open
		// a new learning period, in which everything is allowed.
		errs = append(errs, errors.New("learning_period needs storage or output::replica_id, so that a restart does not start it again"))
	}
	if cfg.RelearnPeriod < 0 {
		errs = append(errs, errors.New("relearn_period must not be negative"))
	}
	switch cfg.UnseenCallees {
	case "", render.UnseenAudit, render.UnseenDeny:
	default:
		errs = append(errs, fmt.Errorf("unseen_callees: %q must be audit or deny", cfg.UnseenCallees))
	}
	if _, err := cfg.modeRules(); err != nil {
		errs = append(errs, err)
	}
	if cfg.OverridesFile != "" {
		if _, err := overrides.Load(cfg.OverridesFile); err != nil {
			errs = append(errs, fmt.Errorf("overrides_file: %w", err))
		}
	}
	if cfg.MaxShrink < 0 || cfg.MaxShrink > 1 {
		errs = append(errs, fmt.Errorf("max_shrink: %v must be between 0 and 1", cfg.MaxShrink))
	}
	for _, td := range cfg.TrustDomains {
		if spiffeid.Validate("spiffe://"+td) != nil || strings.Contains(td, "/") {
			errs = append(errs, fmt.Errorf("trust_domains: %q is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_')", td))
		}
	}
	if cfg.Serve.MaxWaiting < 0 {
		errs = append(errs, errors.New("serve::max_waiting must not be negative"))
	}
	if cfg.Output.ReplicaID != "" {
		if err := shard.ValidReplica(cfg.Output.ReplicaID); err != nil {
			errs = append(errs, fmt.Errorf("output::replica_id: %w", err))
		}
	}
	if cfg.Output.ReplicaTimeout < 0 {
		errs = append(errs, errors.New("output::replica_timeout must not be negative"))
	}
	_, outErrs := cfg.Output.validate()
	errs = append(errs, outErrs...)
	errs = append(errs, cfg.Signing.validate()...)
	if _, err := route.NewLearner(cfg.Routes.Templates, cfg.Routes.MaxPathLength, cfg.Routes.MaxSegments); err != nil {
		errs = append(errs, fmt.Errorf("routes::templates: %w", err))
	}
	if _, err := cfg.specs(); err != nil {
		errs = append(errs, err)
	}
	if cfg.Routes.CardinalityThreshold < 0 || cfg.Routes.CardinalityThreshold == 1 {
		errs = append(errs, errors.New("routes::cardinality_threshold must be 0 (off) or at least 2"))
	}
	if cfg.Routes.MaxPathLength <= 0 {
		errs = append(errs, errors.New("routes::max_path_length must be positive"))
	}
	if cfg.Routes.MaxSegments <= 0 || cfg.Routes.MaxSegments > route.MaxSegments {
		errs = append(errs, fmt.Errorf("routes::max_segments must be between 1 and %d", route.MaxSegments))
	}
	a := cfg.Attributes
	if len(a.XFCC)+len(a.RequestHeaders)+len(a.XFCCBy) == 0 {
		errs = append(errs, errors.New("attributes: one of xfcc, request_headers or xfcc_by/xfcc_uri must name an attribute"))
	}
	if len(a.XFCCBy) > 0 != (len(a.XFCCURI) > 0) {
		errs = append(errs, errors.New("attributes: xfcc_by and xfcc_uri go together"))
	}
	if len(a.Method) == 0 {
		errs = append(errs, errors.New("attributes::method must name an attribute"))
	}
	if len(a.Path)+len(a.URL) == 0 {
		errs = append(errs, errors.New("attributes: path or url must name an attribute"))
	}
	return errors.Join(errs...)
}

// modeRules parses the modes.
func (cfg *Config) modeRules() ([]lifecycle.Rule, error) {
	rules := make([]lifecycle.Rule, 0, len(cfg.Modes))
	for i, m := range cfg.Modes {
		mode, err := lifecycle.ParseMode(m.Mode)
		if err != nil {
			return nil, fmt.Errorf("modes[%d]: %w", i, err)
		}
		if len(m.Callees) == 0 {
			return nil, fmt.Errorf("modes[%d]: callees must name at least one callee", i)
		}
		r := lifecycle.Rule{Mode: mode}
		for _, c := range m.Callees {
			p, err := spiffeid.ParsePattern(c)
			if err != nil {
				return nil, fmt.Errorf("modes[%d]::callees: %w", i, err)
			}
			r.Callees = append(r.Callees, p)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// specs reads the routes::openapi entries: a spec that cannot be read,
// with its file and the reason, stops the collector at start.
func (cfg *Config) specs() (*specSet, error) {
	set := &specSet{}
	for i, o := range cfg.Routes.OpenAPI {
		p, err := spiffeid.ParsePattern(o.Callee)
		if err != nil {
			return nil, fmt.Errorf("routes::openapi[%d]::callee: %w", i, err)
		}
		if o.Spec == "" {
			return nil, fmt.Errorf("routes::openapi[%d]::spec must name a file", i)
		}
		e, err := openSpec(p, o.Spec, o.Strict)
		if err != nil {
			return nil, fmt.Errorf("routes::openapi[%d]::spec: %w", i, err)
		}
		set.entries = append(set.entries, e)
	}
	return set, nil
}

// replicaTimeout is output::replica_timeout with its default.
func (cfg *Config) replicaTimeout() time.Duration {
	if cfg.Output.ReplicaTimeout > 0 {
		return cfg.Output.ReplicaTimeout
	}
	return 3 * cfg.FlushInterval
}

// unseenCallees is unseen_callees with its default.
func (cfg *Config) unseenCallees() string {
	switch {
	case cfg.UnseenCallees != "":
		return cfg.UnseenCallees
	case cfg.LearningPeriod > 0:
		return render.UnseenAudit
	}
	return render.UnseenDeny
}

// validate checks the output URL and returns the local directory of a
// file:// URL ("" for an object store).
func (o OutputConfig) validate() (dir string, errs []error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", []error{fmt.Errorf("output::url: %w", err)}
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			errs = append(errs, fmt.Errorf("output::url: file URL must be file:///path, got host %q", u.Host))
		}
		if u.Path == "" || u.RawQuery != "" {
			errs = append(errs, errors.New("output::url: file URL needs an absolute path and no query"))
		}
		dir = u.Path
	case "s3", "gs", "azblob":
		if _, err := publish.BucketURL(o.URL); err != nil {
			errs = append(errs, fmt.Errorf("output::url: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("output::url: scheme %q is not supported (want file, s3, gs or azblob)", u.Scheme))
	}
	if o.KeepRevisions < 0 {
		errs = append(errs, errors.New("output::keep_revisions must not be negative"))
	}
	if o.KeepRevisions > 0 && u.Scheme == "file" {
		errs = append(errs, errors.New("output::keep_revisions applies to object stores only"))
	}
	if o.Timeout <= 0 {
		errs = append(errs, errors.New("output::timeout must be positive"))
	}
	if p := o.UnpackedDir; p != "" {
		switch {
		case !filepath.IsAbs(p):
			errs = append(errs, fmt.Errorf("output::unpacked_dir: %q must be an absolute path", p))
		case dir != "" && filepath.Clean(p) == filepath.Clean(dir):
			errs = append(errs, errors.New("output::unpacked_dir must differ from the output directory"))
		}
	}
	return dir, errs
}
