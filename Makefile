# The README's contract: `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PORT ?= 3000
ENV := source scripts/env.sh &&

.PHONY: setup run run-scaled dev test unit e2e lint typecheck bench clean doctor

setup:
	@scripts/setup.sh

run: setup
	@echo "Open http://localhost:$(PORT) once the app says it is running."
	@$(ENV) PORT=$(PORT) reflex run --env prod --single-port

# PostgreSQL + Redis + $(WORKERS) workers under supervisord behind HAProxy on one port (README,
# "Running at scale"). `exec`: the cluster is make's own child, so it hears make die.
WORKERS ?= 3
run-scaled: setup
	@scripts/services.sh
	@$(ENV) exec python -m deploy.cluster --port $(PORT) --workers $(WORKERS)

# Checks a running app (make run / make run-scaled) hop by hop; exit status 1 when a hop fails.
URL ?= http://localhost:$(PORT)
doctor:
	@$(ENV) python -m deploy.doctor $(URL)

dev: setup
	@$(ENV) PORT=$(PORT) reflex run --env dev

test: setup
	@scripts/setup.sh --browser
	@scripts/services.sh
	@$(ENV) ruff check .
	@$(ENV) python -m pytest tests e2e -v

unit: setup
	@$(ENV) python -m pytest tests -q

e2e: setup
	@scripts/setup.sh --browser
	@$(ENV) python -m pytest e2e -v

lint: setup
	@$(ENV) ruff check . && ruff format --check .

typecheck: setup
	@$(ENV) mypy core models providers deploy rxapp

clean:
	rm -rf .web .states data

bench: setup
	@scripts/setup.sh --browser
	@$(ENV) python -m bench.run
