# Two commands do all set-up: `make demo` and `make test` (both idempotent).
VENV := .venv
BIN := $(VENV)/bin
export RAY_USAGE_STATS_ENABLED := 0
export PYANNOTE_METRICS_ENABLED := 0

.PHONY: setup demo test lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(BIN)/python -m yivideo.testmedia --out build/sample --name sample --minutes 1
	$(BIN)/yivideo run subtitles --input build/sample/sample.mp4 --out build/demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q -ra -n 2 --dist loadgroup --durations=15

bench: setup
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/asr.py

clean:
	rm -rf build .pytest_cache .hypothesis
