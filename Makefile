# LLaMA-1 pretraining system reproduction.  `make setup` first; see README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
LLAMA  := $(VENV)/bin/llama
OUT    ?= out
export DS_ACCELERATOR ?= cpu

VOCAB  ?= 8000
SEQ    ?= 512

.PHONY: setup test lm ccnet sources tokenizer tokens demo bench clean

setup:
	bash scripts/setup.sh

test:
	$(PY) -m pytest -q

lm:
	$(LLAMA) lm --out $(OUT)/lm

ccnet: lm
	$(LLAMA) ccnet --out $(OUT)/ccnet

sources: ccnet
	$(LLAMA) -q c4 --out $(OUT)/c4
	$(LLAMA) -q github --out $(OUT)/github
	$(LLAMA) -q wikipedia --out $(OUT)/wikipedia
	$(LLAMA) -q books --out $(OUT)/books
	$(LLAMA) -q arxiv --out $(OUT)/arxiv
	$(LLAMA) -q stackexchange --out $(OUT)/stackexchange
	$(LLAMA) -q train-quality-classifier --wiki $(OUT)/wikipedia --out $(OUT)/quality
	$(LLAMA) -q quality --input $(OUT)/ccnet --model $(OUT)/quality/model.bin --out $(OUT)/cc

# The bundled sample supports ~10k-30k pieces; LLaMA's 32000 needs more text: VOCAB=32000 on real data.
tokenizer: sources
	$(LLAMA) -q train-tokenizer --vocab-size $(VOCAB) --out $(OUT)/tokenizer

tokens: tokenizer
	$(LLAMA) -q tokenize --root $(OUT) --tokenizer $(OUT)/tokenizer/tokenizer.model --seq-len $(SEQ) --out $(OUT)/tokens

demo: ccnet
	$(LLAMA) inspect $(OUT)/ccnet -n 2

bench:
	$(PY) -m pipelines.bench

clean:
	rm -rf $(OUT)
