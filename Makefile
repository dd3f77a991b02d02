# The two commands of the README, and a few helpers.
.PHONY: start test lint

start:  ## install, seed demo data, train the demo models, start web + worker + beat
	bash scripts/start.sh

test:   ## install and run the whole test suite
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
