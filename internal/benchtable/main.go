// Command benchtable prints `make bench`'s one table: the figures the issue
// asks for, read from Go benchmark output (the exporter's benchmarks and
// BenchmarkCheck through opa-envoy-plugin), as medians over the runs.
//
//	benchtable bench.txt [more.txt...]   (standard input without files)
package main

import (
	"fmt"
	"os"
)

func main() {
	var res results
	if err := readAll(&res, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	write(os.Stdout, &res, rows)
}

func readAll(res *results, files []string) error {
	if len(files) == 0 {
		return res.read(os.Stdin)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = res.read(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
