package authzctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/render"
	"github.com/otelcol-authz/otelcol-authz/exporter/authzpolicyexporter/internal/review"
)

// reviewDir is a review directory; "" for none, which has no evidence.
type reviewDir string

// evidence returns the callee's evidence entries, none when the directory
// has no evidence.json for it.
func (d reviewDir) evidence(callee string) ([]review.EvidenceEntry, error) {
	var out []review.EvidenceEntry
	err := d.read(filepath.Join(filepath.FromSlash(render.CalleeDir(callee)), review.EvidenceFile), &out)
	return out, err
}

// changes returns the directory's changes.json, nil when it has none.
func (d reviewDir) changes() (*review.ChangeLog, error) {
	var c *review.ChangeLog
	err := d.read(review.ChangesFile, &c)
	return c, err
}

// rules returns the callee's rules with their evidence, and false when the
// directory has no evidence.json for it.
func (d reviewDir) rules(callee string) ([]review.Rule, bool, error) {
	if d == "" {
		return nil, false, nil
	}
	name := filepath.Join(string(d), filepath.FromSlash(render.CalleeDir(callee)), review.EvidenceFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rules, err := review.ParseEvidence(callee, data)
	return rules, err == nil, err
}

func (d reviewDir) read(name string, v any) error {
	if d == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(string(d), name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(string(d), name), err)
	}
	return nil
}

// loadReviewed reads the bundle src names, with the review directory dir
// ("" for none); without src, the bundle is the directory's (an unpacked
// bundle).
func (e *env) loadReviewed(src, dir string) (*loaded, reviewDir, error) {
	rd := reviewDir(dir)
	if err := rd.check(); err != nil {
		return nil, rd, err
	}
	if src == "" {
		if rd == "" {
			return nil, rd, badUsage("give --bundle (or --review, an unpacked bundle)")
		}
		src = string(rd)
	}
	l, err := e.load(src)
	return l, rd, err
}

// check says whether dir is a directory one can read.
func (d reviewDir) check() error {
	if d == "" {
		return nil
	}
	fi, err := os.Stat(string(d))
	if err != nil {
		return fmt.Errorf("review directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("review directory: %s is not a directory", d)
	}
	return nil
}
