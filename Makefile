# Two commands for a new user: `make demo` (the main job) and `make test`.
# Each creates and fills .venv on first use and reuses it afterwards.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/datasets/brain-tumor-mri
MASKS  ?= ../shared/datasets/brain-tumor-mri-masks
OUT    ?= out

export DATA

.PHONY: venv demo test lint train train-baseline train-baseline-same-recipe evaluate benchmarks clean

$(BIN)/braintumor: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,federated]'
	touch $@

venv: $(BIN)/braintumor

demo: venv
	$(BIN)/python scripts/demo.py --data "$(DATA)" --out "$(OUT)/demo"

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy

train: venv
	$(BIN)/braintumor train --config configs/braintumor-net.yaml --data "$(DATA)" --out runs/braintumor-net --export-bundle src/braintumor/weights

train-baseline: venv
	$(BIN)/braintumor train --config configs/paper-cnn.yaml --data "$(DATA)" --out runs/paper-cnn

train-baseline-same-recipe: venv
	$(BIN)/braintumor train --config configs/paper-cnn-our-recipe.yaml --data "$(DATA)" --out runs/paper-cnn-our-recipe

evaluate: venv
	$(BIN)/braintumor evaluate --data "$(DATA)" --out "$(OUT)/eval"

benchmarks: venv
	DATA="$(DATA)" MASKS="$(MASKS)" bash benchmarks/run_all.sh

clean:
	rm -rf $(OUT) .pytest_cache
