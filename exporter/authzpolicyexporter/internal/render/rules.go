package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/jsonstream"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/lifecycle"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/route"
)

// Rule is one allow rule of a bundle: a caller may call a callee with a
// method on a route, but for the requests an Except route admits too.
// Those are the requests of the operations an API spec matches before
// the route's own (see Options.Specs); they are no part of what
// identifies the rule.
type Rule struct {
	Destination, Source, Method string
	Route                       route.Route
	Except                      []route.Route
}

// Admits reports whether the rule grants the request whose raw segments
// are segs, as the policy decides it.
func (r Rule) Admits(segs []string) bool {
	return r.Route.Match(segs) && !slices.ContainsFunc(r.Except, func(e route.Route) bool { return e.Match(segs) })
}

// ExceptText is the Except routes, comma-separated, "" for none.
func (r Rule) ExceptText() string {
	parts := make([]string, len(r.Except))
	for i, e := range r.Except {
		parts[i] = e.String()
	}
	return strings.Join(parts, ", ")
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
// modes had one mode for all: each callee with grants gets it. The data is
// read as a stream, one callee's callers at a time: decoded whole, the
// data of a large mesh would take several times the rules' memory.
func Read(tarball []byte) (Published, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		return Published{}, err
	}
	p := Published{Modes: map[string]lifecycle.Mode{}}
	var authz *authzData
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Published{}, err
		}
		switch strings.TrimPrefix(path.Clean("/"+h.Name), "/") {
		case bundle.ManifestExt:
			var m struct{ Revision string }
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return Published{}, fmt.Errorf("%s: %w", bundle.ManifestExt, err)
			}
			p.Revision = m.Revision
		case dataFile:
			if authz, err = p.readData(tr); err != nil {
				return Published{}, fmt.Errorf("%s: %w", dataFile, err)
			}
		}
	}
	if authz == nil {
		return Published{}, errors.New("bundle has no envoy.authz")
	}
	if !authz.grants {
		return Published{}, errors.New("bundle has no envoy.authz.grants")
	}
	if authz.mode != "" {
		for _, dst := range authz.callers {
			p.Modes[dst] = lifecycle.Mode(authz.mode)
		}
	}
	for id, c := range authz.callees {
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

// dataFile is the file of a bundle's data; OPA's bundle writer puts it at
// the root.
const dataFile = "data.json"

// authzData is what Read keeps of envoy.authz besides the rules.
type authzData struct {
	grants  bool
	mode    string         // the one mode of earlier versions
	callees map[string]any // each callee's entry, with its mode
	callers []string       // callees with a callers object
}

// readData reads data.json down to envoy.authz, adding its rules to p.
func (p *Published) readData(r io.Reader) (*authzData, error) {
	dec := json.NewDecoder(r)
	var authz *authzData
	err := jsonstream.Fields(dec, func(k string) error {
		if k != "envoy" {
			return jsonstream.Skip(dec)
		}
		return jsonstream.Fields(dec, func(k string) error {
			if k != "authz" {
				return jsonstream.Skip(dec)
			}
			authz = &authzData{}
			return p.readAuthz(dec, authz)
		})
	})
	return authz, err
}

func (p *Published) readAuthz(dec *json.Decoder, authz *authzData) error {
	return jsonstream.Fields(dec, func(k string) error {
		var v any
		switch k {
		case "grants":
			authz.grants = true
			return walkGrants(dec, nil, func(dst string, callers map[string]any) error {
				authz.callers = append(authz.callers, dst)
				return addRules(&p.Rules, dst, callers)
			})
		case "mode":
			err := dec.Decode(&v)
			authz.mode, _ = v.(string)
			return err
		case "callees":
			err := dec.Decode(&v)
			authz.callees, _ = v.(map[string]any)
			return err
		}
		return jsonstream.Skip(dec)
	})
}

// addRules appends the rules of one callee's callers object.
func addRules(rules *[]Rule, dst string, callers map[string]any) error {
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
				*rules = append(*rules, Rule{Destination: dst, Source: src, Method: method, Route: rt.route, Except: rt.except})
			}
		}
	}
	return nil
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

// walkGrants visits every callee in the grants tree as dec reads it: its
// SPIFFE ID is the path of keys that leads to a "@callers" object, decoded
// alone.
func walkGrants(dec *json.Decoder, path []string, visit func(dst string, callers map[string]any) error) error {
	if err := jsonstream.Expect(dec, json.Delim('{')); err != nil {
		return fmt.Errorf("grants/%s: not an object", strings.Join(path, "/"))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		if k == callersKey {
			var v any
			if err := dec.Decode(&v); err != nil {
				return err
			}
			callers, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("grants/%s: not an object", strings.Join(append(path, k), "/"))
			}
			if err := visit("spiffe://"+strings.Join(path, "/"), callers); err != nil {
				return err
			}
			continue
		}
		if err := walkGrants(dec, append(path[:len(path):len(path)], k), visit); err != nil {
			return err
		}
	}
	return jsonstream.Expect(dec, json.Delim('}'))
}

// grantRoute is a route a grant holds, with what it leaves out.
type grantRoute struct {
	route  route.Route
	except []route.Route
}

func grantRoutes(g any) ([]grantRoute, error) {
	gm, ok := g.(map[string]any)
	if !ok {
		return nil, errors.New("grant is not an object")
	}
	var out []grantRoute
	paths, _ := gm["paths"].(map[string]any)
	for p := range paths {
		rt, err := route.ParseKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, grantRoute{route: rt})
	}
	for _, k := range []string{"templates", "operations"} {
		if t, ok := gm[k]; ok {
			rts, err := readTemplates(t)
			if err != nil {
				return nil, err
			}
			out = append(out, rts...)
		}
	}
	return out, nil
}
