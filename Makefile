# mlpanel: `make run` sets up and starts the whole panel; `make test` sets up
# and runs every test. Everything else here serves those two.

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
BIN     := bin
# Every module of the go.work workspace, as package patterns.
MODULES := $(shell $(GO) list -m -f '{{.Dir}}/...' 2>/dev/null)
PY_REQS := python/requirements.txt $(wildcard python/requirements-test.txt)

.PHONY: run test bench build venv vet modules fmt clean openapi swaggerui mlflowroutes webui

run: venv build
	./$(BIN)/mlpanel

build:
	$(GO) build -o $(BIN)/mlpanel ./cmd/mlpanel
	$(GO) build -o $(BIN)/ ./services/projects/cmd/projects ./services/tracking/cmd/tracking ./services/deployer/cmd/deployer ./services/gateway/cmd/gateway

# The project's own virtualenv with the pinned MLflow. The stamp makes a
# second `make` quick; changing a requirements file reinstalls.
venv: $(VENV)/.installed

$(VENV)/.installed: $(PY_REQS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(PY_REQS))
	touch $@

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(MODULES)

# Each module builds, vets and tidies on its own, outside the workspace
# (require + replace between the modules; see README "Modules"), so a
# module's go.mod is the truth about its dependencies.
modules:
	@set -e; for d in $(patsubst %/...,%,$(MODULES)); do \
		echo "module $$d"; \
		(cd $$d && GOWORK=off $(GO) mod tidy -diff && GOWORK=off $(GO) vet ./...) || { echo "$$d: does not build, vet or tidy on its own (GOWORK=off)"; exit 1; }; \
	done

# The libraries and services run their unit and integration tests under
# the race detector; the end-to-end modules (whose time goes to MLflow
# processes, not Go) run without it, to keep within the CI budget.
RACE_MODULES := $(filter $(CURDIR)/pkg/% $(CURDIR)/services/%,$(MODULES))

test: venv vet modules swaggerui webui
	$(GO) test -race -vet=off -count=1 -timeout 30m $(RACE_MODULES)
	$(GO) test -vet=off -count=1 -timeout 45m $(filter-out $(RACE_MODULES),$(MODULES))

# Benchmarks print ratios against a baseline measured in the same run.
bench: venv
	$(GO) test -run '^$$' -bench . -benchtime 20x ./tests/e2e/
	$(GO) test -run '^$$' -bench BenchmarkProxiedCall -benchtime 3000x ./services/gateway/
	$(GO) test -run '^$$' -bench BenchmarkTrackingReads -benchtime 1x -timeout 30m ./services/tracking/adapters/mlflowdb/
	$(GO) test -run '^$$' -bench BenchmarkRevision -benchtime 200x ./pkg/platform/mlflowschema/
	$(GO) test -run '^$$' -bench BenchmarkSearchAcrossProjects -benchtime 1x -timeout 30m ./services/tracking/adapters/mlflowdb/

# The OpenAPI document is the merge of services/gateway/openapi/*.yaml.
openapi:
	$(GO) test ./services/gateway -run TestOpenAPIDocumentIsTheMerge -update-spec

# Installs the pinned swagger-ui-dist with npm and checks that the files
# embedded in the gateway are that package's.
swaggerui:
	services/gateway/npm-verify.sh swaggerui dist TestSwaggerUIMatchesNPM

# The MLflow proxy's read/write table, generated from the pinned MLflow's own
# routes (TestMLflowRouteTableIsCurrent fails when it is stale).
mlflowroutes: venv
	$(VENV)/bin/python services/gateway/mlflowroutes/gen.py > services/gateway/mlflow_routes_gen.go.tmp
	gofmt services/gateway/mlflow_routes_gen.go.tmp > services/gateway/mlflow_routes_gen.go
	rm services/gateway/mlflow_routes_gen.go.tmp

# Installs the pinned Preact+htm and uPlot with npm and checks that the
# files the web panel embeds are those packages'.
webui:
	services/gateway/npm-verify.sh webui vendor TestWebUIVendorMatchesNPM

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
