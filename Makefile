# apiservice-guard. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN        ?= bin
GUARD      := $(BIN)/apiservice-guard
# Fuzz time per target in `make test`.
FUZZTIME   ?= 5s
# Fuzz targets run by `make fuzz`, as package:FuzzFunc.
FUZZ_TARGETS := ./certs:FuzzParseBundle ./certs:FuzzMergeCA ./policies:FuzzParseConfig ./policies/netpol:FuzzEvaluate ./policies/netpol:FuzzClusterEvaluate ./policies/netpol:FuzzCiliumIngress ./webhook:FuzzReview ./k0s:FuzzFindClusterConfig ./k0s:FuzzParseWorkerKonnectivity ./internal/ttlcache:FuzzByteBudget ./webhook:FuzzRespond ./webhook:FuzzEncodeReview ./webhook:FuzzObjectDecoding ./internal/shorten:FuzzPrintable
# Set KEEP=1 to leave the demo control plane running.
KEEP       ?=

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Build (or reuse) the pinned kube-apiserver, etcd and kubectl; print their directory.
	@hack/tools.sh

.PHONY: build
build: ## Build the guard binary into bin/.
	go build -o $(GUARD) ./cmd/apiservice-guard

.PHONY: vet
vet: ## go vet and gofmt check.
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

.PHONY: unit
unit: ## Unit tests (no control plane).
	go test -count=1 $$(go list ./... | grep -v /test/e2e)

.PHONY: e2e
e2e: ## End-to-end tests against a real kube-apiserver + etcd.
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go test -count=1 -timeout 20m ./cluster/ ./test/e2e/

# A target that fails with a bare "context deadline exceeded" and no failing
# input written met Go's fuzzing coordinator race at the end of -fuzztime
# (go.dev/issue/75804, fixed in Go 1.27): it runs once more. A finding, or a
# second failure, fails.
.PHONY: fuzz
fuzz: ## Run each fuzz target briefly (FUZZTIME).
	@for spec in $(FUZZ_TARGETS); do \
	  pkg=$${spec%%:*}; fn=$${spec##*:}; \
	  echo "fuzz $$pkg $$fn"; \
	  out=$$(mktemp); \
	  if ! go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1 | tee "$$out"; then \
	    if grep -q 'context deadline exceeded' "$$out" && ! grep -q 'Failing input written' "$$out"; then \
	      echo "fuzz $$pkg $$fn: the coordinator's deadline race (go.dev/issue/75804), no input written: once more"; \
	      go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	    else rm -f "$$out"; exit 1; fi; \
	  fi; \
	  rm -f "$$out"; \
	done

.PHONY: test
test: vet ## Everything CI runs: vet, unit, fuzz, e2e (builds the control plane on first use).
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go test -count=1 -timeout 25m ./...
	$(MAKE) --no-print-directory fuzz

.PHONY: bench
bench: ## Benchmarks recorded in docs/benchmarks.md.
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go test -run '^$$' -bench . -skip 'Installed|AgainstNoOp' -benchmem ./bench/
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go test -run '^$$' -bench Installed -benchtime 20000x ./bench/
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go test -v -run '^$$' -bench AgainstNoOp -benchtime 2000x ./bench/

.PHONY: demo
demo: build ## Start a local control plane and the guard, apply examples/ with kubectl (KEEP=1 leaves it running).
	KUBEBUILDER_ASSETS="$$(hack/tools.sh)" go run ./hack/demo --guard $(GUARD) $(if $(KEEP),--keep)
