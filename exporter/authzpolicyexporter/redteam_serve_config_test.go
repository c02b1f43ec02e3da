package authzpolicyexporter

// Red-team tests of serve's configuration. TestRedteamHolds* document
// what held up; the others are regression tests of what a red team found.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/metadata"
	"go.opentelemetry.io/collector/confmap"
)

// memProvider serves "mem:<name>" from docs and "env:<NAME>" from env,
// the way the collector's yaml and env providers do: a value comes back
// as YAML, so the resolver keeps its original string beside its typed
// value.
type memProvider struct {
	scheme string
	docs   map[string]string
}

func (p memProvider) Retrieve(_ context.Context, uri string, _ confmap.WatcherFunc) (*confmap.Retrieved, error) {
	return confmap.NewRetrievedFromYAML([]byte(p.docs[strings.TrimPrefix(uri, p.scheme+":")]))
}
func (p memProvider) Scheme() string               { return p.scheme }
func (memProvider) Shutdown(context.Context) error { return nil }

// resolve resolves doc with ${env:NAME} taken from env, as the collector
// does, and unmarshals it into a default Config.
func resolve(t *testing.T, doc string, env map[string]string) (*Config, error) {
	t.Helper()
	factory := func(p memProvider) confmap.ProviderFactory {
		return confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider { return p })
	}
	r, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:          []string{"mem:main"},
		DefaultScheme: "env",
		ProviderFactories: []confmap.ProviderFactory{
			factory(memProvider{scheme: "mem", docs: map[string]string{"main": doc}}),
			factory(memProvider{scheme: "env", docs: env}),
		},
	})
	require.NoError(t, err)
	conf, err := r.Resolve(context.Background())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := conf.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

// tls and auth under serve really reach the ServerConfig.
func TestRedteamHoldsServeTLSAndAuthUnmarshal(t *testing.T) {
	cfg, err := resolve(t, `
output: {url: "file:///tmp/x"}
serve:
  endpoint: 127.0.0.1:8181
  max_waiting: 7
  tls: {cert_file: /c.pem, key_file: /k.pem, min_version: "1.3"}
  auth: {authenticator: bearertokenauth}
  read_header_timeout: 3s
  keepalive: {idle_timeout: 7s}
`, nil)
	require.NoError(t, err)
	require.True(t, cfg.Serve.TLS.HasValue())
	assert.Equal(t, "/c.pem", cfg.Serve.TLS.Get().CertFile)
	assert.Equal(t, "/k.pem", cfg.Serve.TLS.Get().KeyFile)
	assert.Equal(t, "1.3", cfg.Serve.TLS.Get().MinVersion)
	require.True(t, cfg.Serve.Auth.HasValue())
	assert.Equal(t, "bearertokenauth", cfg.Serve.Auth.Get().Config.AuthenticatorID.String())
	assert.Equal(t, 7, cfg.Serve.MaxWaiting)
	assert.Equal(t, 3*time.Second, cfg.Serve.ReadHeaderTimeout)
	// confighttp v0.162 prioritizes the keepalive section (feature gate
	// on by default): the section holds the settings.
	require.True(t, cfg.Serve.Keepalive.HasValue())
	assert.Equal(t, 7*time.Second, cfg.Serve.Keepalive.Get().IdleTimeout)
	assert.Equal(t, 30*time.Second, cfg.Serve.WriteTimeout, "defaults not given are kept")
}

// An auth setting is applied: the server does not start without the
// authenticator it names (rather than starting open).
func TestRedteamHoldsServeAuthApplied(t *testing.T) {
	cfg, err := resolve(t, `
output: {url: "file://`+t.TempDir()+`"}
serve:
  endpoint: 127.0.0.1:0
  auth: {authenticator: bearertokenauth}
`, nil)
	require.NoError(t, err)
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	err = e.start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err, "an unresolvable authenticator must fail the start, not serve unauthenticated")
	assert.Contains(t, err.Error(), "serve:")
	require.NoError(t, e.shutdown(context.Background()))
}

// Values from ${env:...} keep their string form everywhere in the
// collector: a string setting whose value looks like a number is that
// string. ServeConfig.Unmarshal once went through conf.ToStringMap(),
// which drops the original strings, so under serve (and only there) the
// same value was a float and the configuration was refused. Here
// tls::min_version from the environment, as every other confighttp
// server of the collector takes it.
func TestRedteamServeEnvStrings(t *testing.T) {
	env := map[string]string{"TLS_MIN": "1.3", "WAITING": "25", "HDR": "1234"}
	// The same settings into a plain confighttp.ServerConfig, as any
	// receiver decodes them: accepted.
	doc := `
endpoint: 127.0.0.1:8181
tls: {cert_file: /c.pem, key_file: /k.pem, min_version: "${env:TLS_MIN}"}
response_headers: {X-Build: "${env:HDR}"}
`
	r, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs: []string{"mem:main"}, DefaultScheme: "env",
		ProviderFactories: []confmap.ProviderFactory{
			confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider {
				return memProvider{scheme: "mem", docs: map[string]string{"main": doc}}
			}),
			confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider {
				return memProvider{scheme: "env", docs: env}
			}),
		},
	})
	require.NoError(t, err)
	conf, err := r.Resolve(context.Background())
	require.NoError(t, err)
	plain := confighttp.NewDefaultServerConfig()
	require.NoError(t, conf.Unmarshal(&plain), "a receiver's confighttp server accepts it")
	require.Equal(t, "1.3", plain.TLS.Get().MinVersion)

	cfg, err := resolve(t, `
output: {url: "file:///tmp/x"}
serve:
  endpoint: 127.0.0.1:8181
  max_waiting: ${env:WAITING}
  tls: {cert_file: /c.pem, key_file: /k.pem, min_version: "${env:TLS_MIN}"}
  response_headers: {X-Build: "${env:HDR}"}
`, env)
	require.NoError(t, err, "serve refuses what every confighttp server accepts")
	assert.Equal(t, "1.3", cfg.Serve.TLS.Get().MinVersion)
	assert.Equal(t, 25, cfg.Serve.MaxWaiting)
}

// max_waiting from the environment (an int) and unknown keys.
func TestRedteamHoldsServeMaxWaitingEnvAndUnknownKeys(t *testing.T) {
	cfg, err := resolve(t, `
output: {url: "file:///tmp/x"}
serve: {endpoint: "127.0.0.1:8181", max_waiting: "${env:W}"}
`, map[string]string{"W": "25"})
	require.NoError(t, err)
	assert.Equal(t, 25, cfg.Serve.MaxWaiting)

	for _, bad := range []string{
		`{endpoint: "127.0.0.1:8181", maxwaiting: 3}`,
		`{endpoint: "127.0.0.1:8181", tls: {cert_file: /c, key_file: /k, bogus: 1}}`,
		`{endpoint: "127.0.0.1:8181", max_waiting: "many"}`,
		`{endpoint: "127.0.0.1:8181", max_waiting: -2}`,
		`{endpoint: "127.0.0.1:8181", idle_timeout: 3s, keepalive: {idle_timeout: 4s}}`,
	} {
		_, err := resolve(t, "output: {url: \"file:///tmp/x\"}\nserve: "+bad+"\n", nil)
		assert.Error(t, err, bad)
	}
}
