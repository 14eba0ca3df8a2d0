# Quick start: `make demo` (the main job on embedded data) and `make test` (lint, types, the whole test suite).
.PHONY: install demo test bench docs

.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $@

install: .venv/.installed

demo: .venv/.installed
	.venv/bin/cimsim demo

test: .venv/.installed
	.venv/bin/ruff check cimsim tests benchmarks examples scripts
	.venv/bin/mypy
	.venv/bin/python -m pytest -q

bench: .venv/.installed
	.venv/bin/python benchmarks/bench_mvm.py
	.venv/bin/python benchmarks/bench_train.py
	.venv/bin/python benchmarks/bench_drift.py

docs: .venv/.installed
	.venv/bin/python -m cimsim.profiles.docgen
