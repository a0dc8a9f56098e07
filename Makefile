# LLaMA-1 pretraining system reproduction.  `make setup` first; see README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
LLAMA  := $(VENV)/bin/llama
OUT    ?= out
# every default output location follows OUT too (core/paths.py reads LLAMA_OUT)
export LLAMA_OUT := $(abspath $(OUT))
# DS_ACCELERATOR=cpu is set where a step runs on the CPU (train/launch.py's CPU branch, the
# tests, the local DAG run); exported to every target it would reach a GPU launch too.

VOCAB  ?= 8000
SEQ    ?= 512

HOSTFILE  ?=
NUM_NODES ?= 1
NUM_GPUS  ?= 8
LAUNCHER  ?= auto

.PHONY: setup test test-fast lm ccnet sources tokenizer tokens train-tiny train-7b demo bench bench-setup bench-train bench-scale clean

setup:
	bash scripts/setup.sh

test:
	$(PY) -m pytest -q

# The fast tier (~30 s): no whole pipelines, no training (tests marked slow, see tests/conftest.py).
test-fast:
	$(PY) -m pytest -q -m "not slow"

lm:
	$(LLAMA) lm --out $(OUT)/lm

ccnet: lm
	$(LLAMA) ccnet --lm-dir $(OUT)/lm --out $(OUT)/ccnet --rejected

# the registered sources (pipelines/registry.py): each one's command, then the rest of CommonCrawl
SOURCE_DIRS = $(shell $(PY) -m pipelines.registry dirs)

sources: ccnet
	@lines="$$($(PY) -m pipelines.registry commands $(OUT))" || exit 1; \
	echo "$$lines" | while read -r args; do echo "$(LLAMA) $$args"; $(LLAMA) $$args || exit 1; done
	$(LLAMA) -q extract-wiki-refs --out $(OUT)/wikirefs
	# RedPajama trains 5 epochs at lr 0.1 on ~600k pages; the sample's ~100 need more
	$(LLAMA) -q train-quality-classifier --pages $(OUT)/ccnet --refs $(OUT)/wikirefs --wiki $(OUT)/wikipedia \
		--epoch 50 --lr 0.5 --out $(OUT)/quality
	$(LLAMA) -q quality --input $(OUT)/ccnet --model $(OUT)/quality/model.bin --out $(OUT)/cc --rejected

# The bundled sample supports ~10k-30k pieces; LLaMA's 32000 needs more text: VOCAB=32000 on real data.
tokenizer: sources
	$(LLAMA) -q train-tokenizer --vocab-size $(VOCAB) --out $(OUT)/tokenizer \
		$(addprefix $(OUT)/,$(SOURCE_DIRS))

tokens: tokenizer
	$(LLAMA) -q tokenize --root $(OUT) --tokenizer $(OUT)/tokenizer/tokenizer.model --seq-len $(SEQ) --out $(OUT)/tokens

train-tiny: tokens
	$(LLAMA) train --config configs/train_tiny.json --nproc 2 --data $(OUT)/tokens --run-dir $(OUT)/runs/tiny

train-7b:
	$(LLAMA) train-7b --config configs/train_7b.json --num-nodes $(NUM_NODES) --num-gpus $(NUM_GPUS) \
		--data $(OUT)/tokens --run-dir $(OUT)/runs/7b \
		--launcher $(LAUNCHER) $(if $(HOSTFILE),--hostfile $(HOSTFILE))

# The README's main command: the whole DAG on the bundled data (dag.test(), no scheduler).
demo:
	$(PY) -m dags.run_local --conf '{"out": "$(abspath $(OUT))"}'

demo-inspect:
	$(LLAMA) inspect $(OUT)/cc -n 2

# Every stage side by side with the tool a user would pick instead (peers: make bench-setup).
bench: lm
	$(PY) -m bench.peers

bench-setup:
	$(PY) -m pip install -q -e ".[bench]"

# Volume corpus recombined from the real samples at 1x/4x/16x; 1 and 2 worker processes; peak RSS.
bench-scale: lm
	$(PY) -m bench.scale

bench-train: tokens
	$(PY) -m train.bench $(OUT)/tokens

clean:
	rm -rf $(OUT)
