# RegimeLab tasks. `make help` lists them.
.DEFAULT_GOAL := help
.PHONY: help up test test-quick lint format typecheck prisma-validate prisma-drift web ci

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

up: ## run RegimeLab on the embedded defaults
	uv run regimelab up

test: ## the full test suite
	uv run pytest

test-quick: ## tests without the slow ones
	uv run pytest -m "not slow"

lint: ## ruff lint and format check
	uv run ruff check .
	uv run ruff format --check .

format: ## format the code
	uv run ruff format .
	uv run ruff check --fix .

typecheck: ## mypy on engine/ and api/
	uv run mypy

prisma-validate: ## validate prisma/schema.prisma
	npm ci --prefix prisma --no-audit --no-fund
	npm --prefix prisma run validate

prisma-drift: ## fail if the migrations don't produce schema.prisma
	uv run python scripts/with_throwaway_postgres.py npm --prefix prisma run --silent drift

web: ## run the dashboard in dev mode
	cd web && npm ci && npm run dev

ci: ## what CI runs
	bash .ci/run
