# otelcol-authz: learn service-to-service authorization from traffic, publish OPA bundles.
SHELL := /bin/bash
.DEFAULT_GOAL := build

# Pinned tool versions; tools are built once into a cache shared by every checkout.
OCB_VERSION ?= v0.162.0
OPA_VERSION ?= v1.22.2
TOOLS ?= $(HOME)/.cache/otelcol-authz/bin
OCB := $(TOOLS)/builder-$(OCB_VERSION)
OPA := $(TOOLS)/opa-$(OPA_VERSION)
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT := $(TOOLS)/benchstat-$(BENCHSTAT_VERSION)
export OTELCOL_AUTHZ_OPA := $(OPA)

GO_PACKAGES := ./...
DIST := bin/otelcol-authz

.PHONY: build test unit e2e demo bench lint fmt generate tools clean

$(OCB):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
	mv $(TOOLS)/builder $@

$(OPA):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/open-policy-agent/opa@$(OPA_VERSION)
	mv $(TOOLS)/opa $@

$(BENCHSTAT):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	mv $(TOOLS)/benchstat $@

tools: $(OCB) $(OPA) $(BENCHSTAT)

# The custom collector distribution, built by ocb from builder-config.yaml.
build: $(DIST)
$(DIST): $(OCB) builder-config.yaml go.mod go.sum $(shell find exporter -name '*.go' -o -name '*.rego' -o -name '*.yaml')
	$(OCB) --config builder-config.yaml
	@mkdir -p bin
	cp _build/otelcol-authz $@

# All tests: unit, golden, decision, config, lifecycle (with -race), then
# end-to-end against the built distribution.
test: unit e2e

# The learning-quality measurement evaluates thousands of decisions with OPA:
# it runs without the race detector, everything else with it.
QUALITY := ./exporter/authzpolicyexporter/internal/quality/
unit: lint
	go test -race -count=1 $$(go list $(GO_PACKAGES) | grep -v /internal/quality)
	go test -count=1 -v -run LearningQuality $(QUALITY)

e2e: $(DIST) $(OPA)
	OTELCOL_AUTHZ_BIN=$(abspath $(DIST)) go test -count=1 -tags e2e -run E2E -v ./test/e2e/

# Builds the distribution, starts it, replays the sample Pixie spans and
# shows the bundle and a few decisions.
demo: $(DIST) $(OPA)
	./deploy/demo.sh $(abspath $(DIST)) $(OPA)

# Ingest (ns/span, allocs/span), parsers, and decision latency of the
# generated policy; six runs each, summarized by benchstat.
bench: $(BENCHSTAT)
	go test -run '^$$' -bench . -benchmem -count 6 ./exporter/... > bench.txt
	$(BENCHSTAT) bench.txt

lint: lint-rego
	go vet $(GO_PACKAGES)
	go vet -tags e2e ./test/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The policy every bundle carries must pass the strictest checks OPA has.
REGO := exporter/authzpolicyexporter/internal/render/policy.rego deploy/demo/rules.rego
lint-rego: $(OPA)
	$(OPA) check --strict $(REGO)
	@test -z "$$($(OPA) fmt -l $(REGO))" || { echo "not opa fmt-stable: $$($(OPA) fmt -l $(REGO))"; exit 1; }

generate:
	go generate ./...

clean:
	rm -rf _build bin
