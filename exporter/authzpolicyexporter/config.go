package authzpolicyexporter // import "github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter"

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
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
	// SkipStatusCodes are responses whose requests are never learned:
	// traffic that was refused must not become allowed, and probes for
	// routes that do not exist (404, 405) must not become policy.
	SkipStatusCodes []int `mapstructure:"skip_status_codes"`

	Output     OutputConfig     `mapstructure:"output"`
	Routes     RoutesConfig     `mapstructure:"routes"`
	Attributes AttributesConfig `mapstructure:"attributes"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// OutputConfig says where the bundle goes.
type OutputConfig struct {
	// URL of the directory that receives bundle.tar.gz (file://).
	URL string `mapstructure:"url"`
	// UnpackedDir, when set, also receives the bundle's files unpacked,
	// with one data.json per destination, for review in version control.
	// The directory is a valid bundle for `opa run --watch`.
	UnpackedDir string `mapstructure:"unpacked_dir"`
}

// RoutesConfig controls how paths become routes.
type RoutesConfig struct {
	// Templates are route templates such as /users/{id} or /users/{id:int};
	// a path that matches one is learned as that template. They win over
	// the span's http.route and over the heuristics.
	Templates []string `mapstructure:"templates"`
	// CardinalityThreshold is how many distinct values after the same
	// parent, for one caller, callee and method, make that position a
	// wildcard. 0 turns this off.
	CardinalityThreshold int `mapstructure:"cardinality_threshold"`
	// MaxPathLength and MaxSegments bound what is learned; longer paths
	// are skipped and counted.
	MaxPathLength int `mapstructure:"max_path_length"`
	MaxSegments   int `mapstructure:"max_segments"`
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
	// (an instrumentation-given template) and StatusCode.
	Method     []string `mapstructure:"method"`
	Path       []string `mapstructure:"path"`
	URL        []string `mapstructure:"url"`
	Route      []string `mapstructure:"route"`
	StatusCode []string `mapstructure:"status_code"`
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
	for _, c := range cfg.SkipStatusCodes {
		if c < 100 || c > 599 {
			errs = append(errs, fmt.Errorf("skip_status_codes: %d is not an HTTP status code", c))
		}
	}
	dir, err := cfg.Output.dir()
	if err != nil {
		errs = append(errs, err)
	}
	if u := cfg.Output.UnpackedDir; u != "" {
		switch {
		case !filepath.IsAbs(u):
			errs = append(errs, fmt.Errorf("output::unpacked_dir: %q must be an absolute path", u))
		case filepath.Clean(u) == filepath.Clean(dir):
			errs = append(errs, errors.New("output::unpacked_dir must differ from the output directory"))
		}
	}
	if _, err := route.NewLearner(cfg.Routes.Templates, cfg.Routes.MaxPathLength, cfg.Routes.MaxSegments); err != nil {
		errs = append(errs, fmt.Errorf("routes::templates: %w", err))
	}
	if cfg.Routes.CardinalityThreshold < 0 || cfg.Routes.CardinalityThreshold == 1 {
		errs = append(errs, errors.New("routes::cardinality_threshold must be 0 (off) or at least 2"))
	}
	if cfg.Routes.MaxPathLength <= 0 {
		errs = append(errs, errors.New("routes::max_path_length must be positive"))
	}
	if cfg.Routes.MaxSegments <= 0 {
		errs = append(errs, errors.New("routes::max_segments must be positive"))
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

// dir returns the local directory of a file:// output URL.
func (o OutputConfig) dir() (string, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", fmt.Errorf("output::url: %w", err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("output::url: scheme %q is not supported (want file://)", u.Scheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("output::url: file URL must be file:///path, got host %q", u.Host)
	}
	if u.Path == "" || u.RawQuery != "" {
		return "", errors.New("output::url: file URL needs an absolute path and no query")
	}
	return u.Path, nil
}
