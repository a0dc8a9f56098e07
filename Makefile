# LLaMA-1 pretraining system reproduction.  `make setup` first; see README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
LLAMA  := $(VENV)/bin/llama
OUT    ?= out
export DS_ACCELERATOR ?= cpu

.PHONY: setup test lm ccnet demo bench clean

setup:
	bash scripts/setup.sh

test:
	$(PY) -m pytest -q

lm:
	$(LLAMA) lm --out $(OUT)/lm

ccnet: lm
	$(LLAMA) ccnet --out $(OUT)/ccnet

demo: ccnet
	$(LLAMA) inspect $(OUT)/ccnet -n 2

bench:
	$(PY) -m pipelines.bench

clean:
	rm -rf $(OUT)
