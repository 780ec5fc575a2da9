# Portcullis — run `make help` for the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN       := $(CURDIR)/.bin
GO        ?= go
TOOLS_MOD := $(CURDIR)/tools
# Unit tests: everything outside test/, plus the in-process tests that run
# both planes (test/crossplane); e2e: the rest of test/.
PKGS_UNIT := $(shell $(GO) list ./... 2>/dev/null | grep -v '/test/') ./test/crossplane
PKGS_E2E  := $(shell $(GO) list ./test/... 2>/dev/null | grep -v '/test/crossplane')
RUN_DIR   ?= $(CURDIR)/.portcullis
# Packages with code or tests only for -tags upgradetest: the synthetic
# resource kind of the rolling-upgrade test (test/upgrade, docs/upgrades.md).
UPGRADETEST_PKGS := ./internal/controlplane/clusterversion/ ./internal/controlplane/state/ \
	./internal/controlplane/adminapi/ ./internal/controlplane/server/

TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go $(BIN)/golangci-lint

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Code generators are pinned to the runtime versions in go.mod; buf and
# golangci-lint are pinned in tools/go.mod so they stay out of the product's.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_CONNECT_VERSION := v1.21.1

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-connect-go:
	GOBIN=$(BIN) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_VERSION)

$(BIN)/buf: $(TOOLS_MOD)/go.mod
	cd $(TOOLS_MOD) && GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf

$(BIN)/golangci-lint: $(TOOLS_MOD)/go.mod
	cd $(TOOLS_MOD) && GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: tools
tools: $(TOOLS) ## Build the pinned build tools into .bin/

.PHONY: build
build: ## Build controlplane, dataplane, gwctl, the demo MCP upstream and the test A2A agent into .bin/
	$(GO) build -o $(BIN)/ ./cmd/...
	$(GO) build -o $(BIN)/demoupstream ./test/demoupstream
	$(GO) build -o $(BIN)/a2aagent ./test/a2aagent

.PHONY: run
run: build ## Run the gateway: single-node control plane, a data plane and a demo MCP upstream, in .portcullis/
	@RUN_DIR=$(RUN_DIR) BIN=$(BIN) ./scripts/run-local

.PHONY: generate
generate: $(TOOLS) ## Regenerate Go code from proto/
	$(BIN)/buf lint
	rm -rf internal/gen
	$(BIN)/buf generate

.PHONY: check-generate
check-generate: generate ## Fail when generated code is not up to date
	@if [ -n "$$(git status --porcelain -- internal/gen)" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; \
		git status --porcelain -- internal/gen; exit 1; fi

.PHONY: lint
lint: $(TOOLS) ## buf lint, gofmt, go vet, plane separation (test files too), golangci-lint
	$(BIN)/buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/gen/')); \
		if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	./scripts/check-imports
	$(BIN)/golangci-lint run --allow-parallel-runners ./...
	$(GO) vet -tags upgradetest $(UPGRADETEST_PKGS)
	$(BIN)/golangci-lint run --allow-parallel-runners --build-tags upgradetest $(UPGRADETEST_PKGS)

.PHONY: unit
unit: ## Unit and in-process cluster tests (race detector on), also with -tags upgradetest where it matters
	$(GO) test -race -count=1 -timeout 15m $(PKGS_UNIT)
	$(GO) test -race -count=1 -timeout 15m -tags upgradetest $(UPGRADETEST_PKGS)

# The official TypeScript MCP SDK, for the e2e test with a non-Go client.
TSCLIENT := test/tsclient/node_modules/.package-lock.json
$(TSCLIENT): test/tsclient/package.json test/tsclient/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed for the TypeScript-client e2e test"; exit 1; }
	npm ci --prefix test/tsclient --no-audit --no-fund

# The official OpenAI and Anthropic TypeScript SDKs, for the LLM e2e tests.
LLMCLIENT := test/llmclient/node_modules/.package-lock.json
$(LLMCLIENT): test/llmclient/package.json test/llmclient/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed for the LLM-client e2e test"; exit 1; }
	npm ci --prefix test/llmclient --no-audit --no-fund

# The official JavaScript A2A SDK, for the e2e test with a non-Go A2A client.
A2AJSCLIENT := test/a2ajsclient/node_modules/.package-lock.json
$(A2AJSCLIENT): test/a2ajsclient/package.json test/a2ajsclient/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed for the JavaScript A2A-client e2e test"; exit 1; }
	npm ci --prefix test/a2ajsclient --no-audit --no-fund

.PHONY: e2e
e2e: $(TSCLIENT) $(A2AJSCLIENT) $(LLMCLIENT) ## End-to-end tests with the real binaries and real MCP, A2A and LLM clients, and the rolling upgrade from test/upgrade/BASELINE (test/; installs the TypeScript MCP, JavaScript A2A and OpenAI/Anthropic SDKs from npm)
	$(GO) test -count=1 -timeout 15m -v $(PKGS_E2E) 2>&1 | tee e2e.out | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' ; test $${PIPESTATUS[0]} -eq 0

.PHONY: fuzz
fuzz: ## Run every fuzz target for a fixed number of executions (scripts/fuzz-all 500000x for longer)
	./scripts/fuzz-all 20000x

# The fuzz targets CI runs on every change, each for a fixed number of
# executions (about 10 s each on a quiet machine; FuzzCompile compiles six
# times per input — from scratch and incrementally, for three snapshots —
# so it runs fewer): the control plane's state machine (a committed entry is
# replayed forever), for the commands of every version, and the data plane's
# snapshot compile. Counts, not durations: Go
# 1.26's fuzz coordinator can report a spurious "context deadline exceeded"
# when a -fuzztime duration ends while a starved worker is mid-call
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
# scripts/fuzz-all runs every target.
FUZZ_CI      := ./internal/controlplane/state:FuzzApply:20000x ./internal/controlplane/state:FuzzApplyDerived:4000x ./internal/dataplane/config:FuzzCompile:3000x

.PHONY: fuzz-ci
fuzz-ci: ## Fuzz the state machine's Apply and the data plane's snapshot compile, a fixed number of executions each
	@for t in $(FUZZ_CI); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; count=$${rest#*:}; \
		echo "== $$pkg $$name ($$count)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$count -fuzzminimizetime 2s -timeout 5m "$$pkg" || exit 1; \
	done

.PHONY: test
test: lint check-generate unit fuzz-ci e2e ## Everything CI holds: lint, check-generate, unit, fuzz-ci, e2e

.PHONY: bench
bench: ## Benchmarks with printed figures: commits on Raft and etcd, leader failover, config distribution on Raft and etcd, snapshot scale, authorization by policy count, runtime inspection per call, audit log records/s and latency, the control plane's audit store at 1M and 10M records, MCP calls and A2A messages direct vs nginx vs data plane (CPU per call, stage budget, tracing off/on, allocations, latency plot), LLM streams' time to first token and per-chunk latency direct vs nginx vs data plane, the rate-limit stage's and budget reservation's cost per call and lease traffic at 1,000 keys
	@mkdir -p bench-results && date +%s > bench-results/.started
	./scripts/ensure-nginx
	$(GO) run ./test/bench/raftbench -out bench-results/raft.md
	$(GO) run ./test/bench/failoverbench -out bench-results/failover.md
	$(GO) run ./test/bench/syncbench -out bench-results/sync.md
	$(GO) run ./test/bench/scalebench -out bench-results/scale.md
	$(GO) run ./test/bench/authzbench -out bench-results/authz.md
	$(GO) run ./test/bench/inspectbench -out bench-results/inspect.md
	$(GO) run ./test/bench/auditbench -out bench-results/audit.md
	$(GO) run ./test/bench/auditstorebench -out bench-results/auditstore.md
	$(GO) run ./test/bench/mcpbench -out bench-results/mcp.md -plot bench-results/mcp-latency.svg
	$(GO) run ./test/bench/a2abench -out bench-results/a2a.md
	$(GO) run ./test/bench/llmbench -out bench-results/llm.md
	$(GO) run ./test/bench/limitbench -out bench-results/limit.md
	@echo "reports written to bench-results/ in $$(( $$(date +%s) - $$(cat bench-results/.started) )) s"

.PHONY: chaos
chaos: ## Fault drills with the real binaries (leader kill, partition, control plane down, data plane kill, hung upstream, etcd faults); one verdict line each
	@mkdir -p chaos-results
	$(GO) run ./test/chaos -out chaos-results/chaos.md -log chaos-results/chaos.log

.PHONY: clean
clean: ## Remove build output and the local run directory
	rm -rf $(BIN) $(RUN_DIR) bench-results chaos-results e2e.out test/tsclient/node_modules test/llmclient/node_modules
