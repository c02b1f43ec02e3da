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

// The review directory's files (output.unpacked_dir): evidence.json beside
// each callee's data.json, changes.json at the top.
const (
	evidenceFile = "evidence.json"
	changesFile  = "changes.json"
)

// changes is what explain reads of changes.json.
type changes struct {
	Revision string `json:"revision"`
	Removed  []struct {
		Callee string `json:"callee"`
		Caller string `json:"caller"`
		Method string `json:"method"`
		Route  string `json:"route"`
		Reason string `json:"reason"`
		Into   string `json:"into,omitempty"`
	} `json:"removed"`
}

// reviewDir is a review directory; "" for none, which has no evidence.
type reviewDir string

// evidence returns the callee's evidence entries, none when the directory
// has no evidence.json for it.
func (d reviewDir) evidence(callee string) ([]review.EvidenceEntry, error) {
	var out []review.EvidenceEntry
	err := d.read(filepath.Join(filepath.FromSlash(render.CalleeDir(callee)), evidenceFile), &out)
	return out, err
}

// changes returns the directory's changes.json, nil when it has none.
func (d reviewDir) changes() (*changes, error) {
	var c *changes
	err := d.read(changesFile, &c)
	return c, err
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
