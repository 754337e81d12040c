# gatehouse — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export GATEHOUSE_CACHE ?= $(HOME)/.cache/gatehouse

.PHONY: help build run test test-short test-race regress bench fuzz check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/gatehouse
	$(GO) build -o bin/gatehouse ./cmd/gatehouse

run: build ## run gatehouse in dev mode (SQLite store, dev token issuer) in front of 127.0.0.1:5432
	./bin/gatehouse serve --dev --config gatehouse.dev.yaml

test: ## build test peers (Ory Hydra, node pg) if missing, then run the whole suite
	./scripts/test-setup.sh
	GATEHOUSE_HYDRA_BIN=$$(./scripts/build-hydra.sh) $(GO) test -count=1 -timeout 20m ./...

test-short: ## unit tests only, no peers needed (servers are skipped when absent)
	$(GO) test -short ./...

test-race: ## the suite with the race detector
	GATEHOUSE_HYDRA_BIN=$$(./scripts/build-hydra.sh) $(GO) test -race -count=1 -timeout 30m ./...

regress: build ## PostgreSQL's regression suite direct vs through gatehouse (slow tier)
	./test/regress/run.sh

bench: build ## pgbench -S direct vs PgBouncer vs gatehouse
	./bench/pgbench.sh

fuzz: ## run each fuzz target for a short while
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$p 2>/dev/null | grep ^Fuzz); do \
	    echo "== $$p $$f"; $(GO) test -run=^$$ -fuzz=^$$f$$ -fuzztime=$${FUZZTIME:-10s} -parallel=1 $$p || exit 1; \
	  done; done

check: ## gofmt, go vet, import rules
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin gatehouse-data
