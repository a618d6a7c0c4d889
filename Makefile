# Entry points for operators and developers. Every target that runs Ansible
# or the tests depends on `setup`, which does nothing when nothing changed.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
SANDBOX_URL := https://fastapi-stack.localhost:8443
# Molecule scenarios run by `make test`; each one is about 5 to 10 minutes.
SCENARIOS ?= docker default stack tls

export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup prerequisites images sandbox smoke lint app-test molecule test bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv with the pinned control-node and app packages

$(STAMP): requirements.txt app/requirements.txt app/requirements-dev.txt app/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r app/requirements.txt -r app/requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e app
	touch $@

prerequisites: ## Install and start Docker Engine, debootstrap and redis-server (Debian, as root)
	scripts/install-prerequisites.sh

images: setup prerequisites ## Build the local images and their archives
	ansible-playbook playbooks/images.yml

sandbox: setup prerequisites ## Start the local sandbox host and deploy the stack to it
	ansible-playbook playbooks/sandbox.yml
	ansible-playbook site.yml
	$(MAKE) --no-print-directory smoke

smoke: ## Send one verified HTTPS request to the sandbox
	@echo "Sandbox URL: $(SANDBOX_URL)/api/v1/hello (/ has no page)"
	@echo "GET /readyz:"
	@curl --silent --show-error --fail --cacert .sandbox/ca.crt \
	  --resolve fastapi-stack.localhost:8443:127.0.0.1 $(SANDBOX_URL)/readyz
	@echo

lint: setup ## Run yamllint, ansible-lint, ruff and mypy (app and tools)
	yamllint --strict .
	ansible-lint
	cd app && ruff check . && ruff format --check . && mypy
	cd tools && ruff check . && ruff format --check . && mypy

app-test: setup ## Run the app's tests against a real redis-server, and the tools' tests
	cd app && pytest
	cd tools && pytest

molecule: images ## Run the Molecule scenarios in SCENARIOS
	for scenario in $(SCENARIOS); do molecule test --scenario-name "$$scenario"; done

test: lint app-test molecule ## Run every check; CI runs this

bench: setup prerequisites images ## Replace the sandbox, measure it, write docs/benchmarks.md
	cd tools && $(BIN)/python -m bench

clean: ## Remove the sandbox host, its volumes and .sandbox/
	-docker rm --force --volumes fastapi-stack-sandbox
	-docker volume rm fastapi-stack-sandbox-docker
	rm -rf .sandbox inventory/sandbox/group_vars/all/vault.yml .cache/facts
