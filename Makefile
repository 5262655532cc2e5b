# Thin aliases for the scripts; the scripts are the reference.
.PHONY: install run test ci lint format

install:
	./scripts/install

run:
	./scripts/run

test:
	./scripts/test

ci:
	./.ci/run

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: install
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
