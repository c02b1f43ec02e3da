package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results are the values of Go benchmark output lines by benchmark name
// (without the -GOMAXPROCS suffix) and unit, one per run, and the
// machine's description from the cpu: lines.
type results struct {
	values map[string]map[string][]float64
	cpu    string
	procs  string
}

// procsSuffix is the -GOMAXPROCS the testing package appends to a name.
var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// read adds the benchmark lines of r; other lines are skipped, as are
// benchmark lines cut short (a failed run).
func (res *results) read(r io.Reader) error {
	if res.values == nil {
		res.values = map[string]map[string][]float64{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			res.cpu = strings.TrimSpace(cpu)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue
		}
		name := f[0]
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			name, res.procs = strings.TrimSuffix(name, m[0]), m[1]
		}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			if res.values[name] == nil {
				res.values[name] = map[string][]float64{}
			}
			res.values[name][f[i+1]] = append(res.values[name][f[i+1]], v)
		}
	}
	return sc.Err()
}

// median is the median of unit's values over every run of every benchmark
// whose name bench matches; ok is false when there is none.
func (res *results) median(bench *regexp.Regexp, unit string) (v float64, ok bool) {
	var all []float64
	for name, units := range res.values {
		if bench.MatchString(name) {
			all = append(all, units[unit]...)
		}
	}
	if len(all) == 0 {
		return 0, false
	}
	slices.Sort(all)
	if n := len(all); n%2 == 0 {
		return (all[n/2-1] + all[n/2]) / 2, true
	}
	return all[len(all)/2], true
}
