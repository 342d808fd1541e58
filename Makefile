# One virtualenv for the Pulumi program, the function and the tools.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  ?= dev

.PHONY: test run plan smoke bench lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt function/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

# make run AUTH=demo: a local ID-token issuer, and the endpoint requires its tokens.
# make run QUOTAS=demo: a local redis-server as the quota store, with small budgets.
run: $(VENV)/.installed
	$(PY) -m tools.devserver $(if $(AUTH),--auth $(AUTH)) $(if $(QUOTAS),--quotas $(QUOTAS))

plan: $(VENV)/.installed
	$(PY) -m tools.plan $(STACK)

# After `pulumi up` (docs/deploying.md): checks the live endpoint, one PASS/FAIL/SKIP line each.
# URL= skips `pulumi stack output` (e.g. URL=http://localhost:8080/token against make run);
# AGENT= mints one real key; tokens via env SMOKE_ID_TOKEN / SMOKE_APP_CHECK_TOKEN; ARGS= any other flag.
smoke: $(VENV)/.installed
	$(PY) -m tools.smoke --stack $(STACK) $(if $(URL),--url $(URL)) $(if $(AGENT),--agent-id $(AGENT)) $(ARGS)

bench: $(VENV)/.installed
	$(PY) -m bench.run

# function/requirements.in -> function/requirements.txt: every package the function deploys,
# transitive ones included, pinned. Run after changing requirements.in; commit both.
lock: $(VENV)/.installed
	cd function && CUSTOM_COMPILE_COMMAND="make lock" ../$(PY) -m piptools compile --quiet --strip-extras --no-emit-index-url \
	  --no-emit-find-links -o requirements.txt requirements.in

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
