package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// Rule is one allow rule of a bundle: a caller may call a callee with a
// method on a route.
type Rule struct {
	Destination, Source, Method string
	Route                       route.Route
}

// Key identifies the rule.
func (r Rule) Key() string {
	return r.Destination + " " + r.Source + " " + r.Method + " " + r.Route.String()
}

// Published is what a bundle published before says: its allow rules and
// the mode of each callee it knows.
type Published struct {
	Revision string
	Rules    []Rule
	Modes    map[string]lifecycle.Mode
}

// ReadRules lists the allow rules of a bundle tarball published before.
func ReadRules(tarball []byte) ([]Rule, error) {
	p, err := Read(tarball)
	return p.Rules, err
}

// Read reads a bundle tarball published before; a freshly rendered Bundle
// carries the same already. A bundle of the version before per-callee
// modes had one mode for all: each callee with grants gets it.
func Read(tarball []byte) (Published, error) {
	b, err := bundle.NewReader(bytes.NewReader(tarball)).WithSkipBundleVerification(true).Read()
	if err != nil {
		return Published{}, err
	}
	authz, ok := lookup(b.Data, "envoy", "authz")
	if !ok {
		return Published{}, errors.New("bundle has no envoy.authz")
	}
	grants, ok := authz["grants"].(map[string]any)
	if !ok {
		return Published{}, errors.New("bundle has no envoy.authz.grants")
	}
	p := Published{Revision: b.Manifest.Revision, Modes: map[string]lifecycle.Mode{}}
	global, _ := authz["mode"].(string)
	err = walkGrants(grants, nil, func(dst string, callers map[string]any) error {
		if global != "" {
			p.Modes[dst] = lifecycle.Mode(global)
		}
		for src, methods := range callers {
			ms, ok := methods.(map[string]any)
			if !ok {
				return fmt.Errorf("callers of %s: not an object", dst)
			}
			for method, g := range ms {
				routes, err := grantRoutes(g)
				if err != nil {
					return fmt.Errorf("%s -> %s %s: %w", src, dst, method, err)
				}
				for _, rt := range routes {
					p.Rules = append(p.Rules, Rule{Destination: dst, Source: src, Method: method, Route: rt})
				}
			}
		}
		return nil
	})
	if err != nil {
		return Published{}, err
	}
	callees, _ := authz["callees"].(map[string]any)
	for id, c := range callees {
		cm, _ := c.(map[string]any)
		mode, _ := cm["mode"].(string)
		m, err := lifecycle.ParseMode(mode)
		if err != nil {
			return Published{}, fmt.Errorf("callee %s: %w", id, err)
		}
		p.Modes[id] = m
	}
	return p, nil
}

func lookup(v any, path ...string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	for _, p := range path {
		if !ok {
			return nil, false
		}
		m, ok = m[p].(map[string]any)
	}
	return m, ok
}

// walkGrants visits every callee in the grants tree: its SPIFFE ID is the
// path of keys that leads to a "@callers" object.
func walkGrants(node map[string]any, path []string, visit func(dst string, callers map[string]any) error) error {
	for k, v := range node {
		child, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("grants/%s: not an object", strings.Join(append(path, k), "/"))
		}
		if k == callersKey {
			if err := visit("spiffe://"+strings.Join(path, "/"), child); err != nil {
				return err
			}
			continue
		}
		if err := walkGrants(child, append(path[:len(path):len(path)], k), visit); err != nil {
			return err
		}
	}
	return nil
}

func grantRoutes(g any) ([]route.Route, error) {
	gm, ok := g.(map[string]any)
	if !ok {
		return nil, errors.New("grant is not an object")
	}
	var out []route.Route
	paths, _ := gm["paths"].(map[string]any)
	for p := range paths {
		rt, err := route.ParseKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, rt)
	}
	if t, ok := gm["templates"]; ok {
		rts, err := readTemplates(t)
		if err != nil {
			return nil, err
		}
		out = append(out, rts...)
	}
	return out, nil
}
