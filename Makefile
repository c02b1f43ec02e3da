# otelcol-authz: learn service-to-service authorization from traffic, publish OPA bundles.
SHELL := /bin/bash
.DEFAULT_GOAL := build

# Pinned tool versions; tools are built once into a cache shared by every checkout.
OCB_VERSION ?= v0.162.0
OPA_VERSION ?= v1.22.2
TOOLS ?= $(HOME)/.cache/otelcol-authz/bin
OCB := $(TOOLS)/builder-$(OCB_VERSION)
OPA := $(TOOLS)/opa-$(OPA_VERSION)
VERSITYGW_VERSION ?= v1.8.0
FAKE_GCS_VERSION ?= v1.56.1
AZURITE_VERSION ?= 3.37.0
OPA_ENVOY_VERSION ?= v1.15.2-envoy
VERSITYGW := $(TOOLS)/versitygw-$(VERSITYGW_VERSION)
FAKE_GCS := $(TOOLS)/fake-gcs-server-$(FAKE_GCS_VERSION)
AZURITE := $(TOOLS)/azurite-$(AZURITE_VERSION)/node_modules/.bin/azurite-blob
OPA_ENVOY := $(TOOLS)/opa-envoy-plugin-$(OPA_ENVOY_VERSION)
# The first tier in front of replicas (deploy/tier): contrib's
# loadbalancingexporter is available at this collector version only.
OCB_TIER_VERSION ?= v0.161.0
OCB_TIER := $(TOOLS)/builder-$(OCB_TIER_VERSION)
TIER := bin/otelcol-authz-tier
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT := $(TOOLS)/benchstat-$(BENCHSTAT_VERSION)
HELM_VERSION ?= v3.22.0
HELM := $(TOOLS)/helm-$(HELM_VERSION)
export OTELCOL_AUTHZ_OPA := $(OPA)

GO_PACKAGES := ./...
DIST := bin/otelcol-authz
CTL := bin/authzctl

.PHONY: build image tier test packages unit e2e demo bench lint fmt generate tools clean

$(OCB):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
	mv $(TOOLS)/builder $@

$(OCB_TIER):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install go.opentelemetry.io/collector/cmd/builder@$(OCB_TIER_VERSION)
	mv $(TOOLS)/builder $@

$(OPA):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/open-policy-agent/opa@$(OPA_VERSION)
	mv $(TOOLS)/opa $@

$(BENCHSTAT):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	mv $(TOOLS)/benchstat $@

# Servers the end-to-end tests start on 127.0.0.1: an S3 gateway, a GCS
# emulator, Azurite, and OPA-Envoy (opa-envoy-plugin, pinned in its own
# tools module because it needs a newer OPA than the collector can link).
$(VERSITYGW):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	mv $(TOOLS)/versitygw $@

$(FAKE_GCS):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install github.com/fsouza/fake-gcs-server@$(FAKE_GCS_VERSION)
	mv $(TOOLS)/fake-gcs-server $@

$(AZURITE):
	@mkdir -p $(TOOLS)/azurite-$(AZURITE_VERSION)
	npm install --prefix $(TOOLS)/azurite-$(AZURITE_VERSION) --no-audit --no-fund azurite@$(AZURITE_VERSION)

$(OPA_ENVOY): internal/tools/opaenvoy/go.mod
	@mkdir -p $(TOOLS)
	go -C internal/tools/opaenvoy build -o $@ github.com/open-policy-agent/opa-envoy-plugin/cmd/opa-envoy-plugin

SERVERS := $(VERSITYGW) $(FAKE_GCS) $(AZURITE) $(OPA_ENVOY)

# Helm, for the end-to-end tests that lint and render the real
# opentelemetry-collector chart with deploy/helm/values.yaml.
$(HELM):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS)/helm $@

tools: $(OCB) $(OPA) $(BENCHSTAT) $(SERVERS) $(HELM)

# The custom collector distribution, built by ocb from builder-config.yaml.
DIST_INPUTS := $(OCB) builder-config.yaml go.mod go.sum $(shell find exporter -name '*.go' -o -name '*.rego' -o -name '*.yaml')
build: $(DIST) $(CTL)
$(DIST): $(DIST_INPUTS)
	$(OCB) --config builder-config.yaml
	@mkdir -p bin
	cp _build/otelcol-authz $@

# authzctl: explain a decision, diff two revisions (cmd/authzctl).
$(CTL): go.mod go.sum $(shell find cmd/authzctl exporter -name '*.go' -o -name '*.rego')
	go build -o $@ ./cmd/authzctl

# The container image (Dockerfile) for linux/amd64 and linux/arm64, as one
# OCI archive whose index holds both. ocb generates the distribution's
# sources once; each architecture's static binary is built from them. Built
# with podman, or with docker buildx where only docker has a working engine.
IMAGE := bin/otelcol-authz-image.tar
DIST_VERSION := $(shell sed -n 's/^  version: *//p' builder-config.yaml)
IMAGE_NAME ?= otelcol-authz:$(DIST_VERSION)
IMAGE_ARCHS := amd64 arm64
IMAGE_CTX := _build/image
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
comma := ,

_build/components.go: $(DIST_INPUTS)
	$(OCB) --config builder-config.yaml --skip-compilation

$(IMAGE_CTX)/linux-%/otelcol-authz: _build/components.go
	cd _build && CGO_ENABLED=0 GOOS=linux GOARCH=$* go build -trimpath -ldflags='-s -w' -o $(abspath $@) .

image: $(IMAGE)
$(IMAGE): Dockerfile deploy/collector-config.yaml $(foreach a,$(IMAGE_ARCHS),$(IMAGE_CTX)/linux-$(a)/otelcol-authz)
	@test -s $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE) (apt-get install -y ca-certificates)" >&2; exit 1; }
	install -D -m 0644 $(CA_BUNDLE) $(IMAGE_CTX)/rootfs/etc/ssl/certs/ca-certificates.crt
	install -D -m 0644 deploy/collector-config.yaml $(IMAGE_CTX)/rootfs/etc/otelcol-authz/config.yaml
	printf 'root:x:0:0:root:/:/sbin/nologin\notelcol-authz:x:10001:10001::/var/lib/otelcol-authz:/sbin/nologin\n' > $(IMAGE_CTX)/rootfs/etc/passwd
	printf 'root:x:0:\notelcol-authz:x:10001:\n' > $(IMAGE_CTX)/rootfs/etc/group
	chmod 0644 $(IMAGE_CTX)/rootfs/etc/passwd $(IMAGE_CTX)/rootfs/etc/group
	mkdir -p $(IMAGE_CTX)/state
	@mkdir -p bin && rm -f $@
	if podman version >/dev/null 2>&1; then \
		podman manifest rm $(IMAGE_NAME) >/dev/null 2>&1; \
		podman rmi $(foreach a,$(IMAGE_ARCHS),$(IMAGE_NAME)-$(a)) >/dev/null 2>&1; \
		for a in $(IMAGE_ARCHS); do \
			podman build --platform linux/$$a -t $(IMAGE_NAME)-$$a \
				--manifest $(IMAGE_NAME) -f Dockerfile $(IMAGE_CTX) || exit 1; \
		done; \
		podman manifest push --all $(IMAGE_NAME) oci-archive:$@; \
	elif docker info >/dev/null 2>&1; then \
		docker buildx build --platform $(subst $() ,$(comma),$(foreach a,$(IMAGE_ARCHS),linux/$(a))) \
			-f Dockerfile --output type=oci,dest=$@ $(IMAGE_CTX); \
	else \
		echo "make image needs podman (apt-get install -y podman) or docker with a running engine" >&2; false; \
	fi || { rm -f $@; exit 1; }

# All tests: unit, golden, decision, config, lifecycle (with -race), then
# end-to-end against the built distribution.
test: packages unit e2e

# What comes from Debian's packages, installed when missing (as root, or
# with sudo): podman builds the image, which carries the CA bundle,
# python3's parser reads the Pixie PxL script in deploy/'s test, and
# Chromium opens the review page in the browser test.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The browser the review page's test drives; a name that is no file when
# Chromium is missing, so that the test fails rather than skips.
CHROMIUM ?= $(or $(shell command -v chromium 2>/dev/null),/usr/bin/chromium)
packages:
	@missing=""; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	test -s $(CA_BUNDLE) || missing="$$missing ca-certificates"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y $$missing || { $(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing; }; \
	fi

# The learning-quality measurement evaluates thousands of decisions with OPA:
# it runs without the race detector, everything else with it.
QUALITY := ./exporter/authzpolicyexporter/internal/quality/
unit: lint
	go test -race -count=1 $$(go list $(GO_PACKAGES) | grep -v /internal/quality)
	go test -count=1 -v -run LearningQuality $(QUALITY)

# The first tier's distribution, built by ocb from deploy/tier.
tier: $(TIER)
$(TIER): $(OCB_TIER) deploy/tier/builder-config.yaml
	cd deploy/tier && $(OCB_TIER) --config builder-config.yaml
	@mkdir -p bin
	cp deploy/tier/_build/otelcol-authz-tier $@

e2e: $(DIST) $(CTL) $(OPA) $(SERVERS) $(HELM) $(IMAGE) $(TIER)
	OTELCOL_AUTHZ_BIN=$(abspath $(DIST)) OTELCOL_AUTHZ_CTL=$(abspath $(CTL)) OTELCOL_AUTHZ_IMAGE=$(abspath $(IMAGE)) OTELCOL_AUTHZ_VERSITYGW=$(VERSITYGW) \
	OTELCOL_AUTHZ_FAKE_GCS=$(FAKE_GCS) OTELCOL_AUTHZ_AZURITE=$(AZURITE) OTELCOL_AUTHZ_OPA_ENVOY=$(OPA_ENVOY) \
	OTELCOL_AUTHZ_HELM=$(HELM) OTELCOL_AUTHZ_CHROMIUM=$(CHROMIUM) OTELCOL_AUTHZ_TIER=$(abspath $(TIER)) \
		go test -count=1 -timeout 20m -tags e2e -run E2E -v ./test/e2e/

# Builds the distribution, starts it, replays the sample Pixie spans and
# shows the bundle and a few decisions.
demo: packages $(DIST) $(CTL) $(OPA)
	CHROMIUM=$(CHROMIUM) ./deploy/demo.sh $(abspath $(DIST)) $(OPA) $(abspath $(CTL))

# The performance figures as one table (README, Measured): the Go benchmarks
# (ingest, parsers, decision latency, render: six runs each; collector
# memory per route: two runs of about half a minute) and, through opa-envoy-plugin, Check latency and sidecar memory
# (BenchmarkCheck: six runs of 3000 rounds, each request sent to the three
# sidecars in turn). Every benchmark line is in bench.txt, benchstat's
# summary of them in benchstat.txt.
bench: $(BENCHSTAT) $(OPA_ENVOY)
	go test -run '^$$' -bench . -skip RouteMemory -benchmem -count 6 -timeout 60m ./exporter/... > bench.txt
	go test -run '^$$' -bench RouteMemory -benchtime 1x -count 2 ./exporter/authzpolicyexporter/ >> bench.txt
	OTELCOL_AUTHZ_OPA_ENVOY=$(OPA_ENVOY) go test -tags e2e -run '^$$' -bench '^BenchmarkCheck$$' \
		-benchtime 3000x -count 6 -timeout 15m ./test/e2e/ >> bench.txt
	$(BENCHSTAT) bench.txt > benchstat.txt
	go run ./internal/benchtable bench.txt

lint: lint-rego
	go vet $(GO_PACKAGES)
	go vet -tags e2e ./test/...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# The policy every bundle carries must pass the strictest checks OPA has.
REGO := $(wildcard exporter/authzpolicyexporter/internal/render/*.rego) deploy/demo/rules.rego
lint-rego: $(OPA)
	$(OPA) check --strict $(REGO)
	@test -z "$$($(OPA) fmt -l $(REGO))" || { echo "not opa fmt-stable: $$($(OPA) fmt -l $(REGO))"; exit 1; }

generate:
	go generate ./...

clean:
	rm -rf _build bin
