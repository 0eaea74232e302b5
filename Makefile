# One place for the environment: everything installs into .venv/ here.
# The ML stack is CPU-only on purpose: torch comes pinned from pyproject's
# [ml] extra (torch==2.13.0, the CPU build on this project's machines) and
# spikingjelly is installed without its declared dependencies, which would
# otherwise pull torchvision, torchaudio, tensorboard and a CUDA torch.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SPIKINGJELLY := spikingjelly==2.0.0
STAMP := $(VENV)/.foveate-installed
OUT ?= out/demo

.PHONY: setup demo test bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ml,test]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(SPIKINGJELLY)
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/foveate run --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/foveate bench all

clean-venv:
	rm -rf $(VENV)
