"""cc_net parity on the shared CC sample: language ID and perplexity as cc_net's own code
computes them (values recorded by ``generate_ccnet.py``; see README.md here)."""
import json

import pytest

from core import paths
from filters.langid import LanguageIdentifier
from filters.perplexity import LMPaths, PerplexityScorer
from filters.text import normalize
from tests.reference.generate_ccnet import EXPECTED, md5, sample_documents, sha1


@pytest.fixture(scope="module")
def expected(lm_dir):
    exp = json.loads(EXPECTED.read_text())
    models = {"lid.176.ftz": paths.lid_model(), "en.sp.vocab": lm_dir / "en.sp.vocab",
              "en.arpa.bin": lm_dir / "en.arpa.bin"}
    for name, path in models.items():
        assert md5(path) == exp["models"][name], f"{path} is not the model the expected values were made with"
    return exp


@pytest.fixture(scope="module")
def docs(data):
    return {d["id"]: d["text"] for d in sample_documents(data)}


def test_language_id_equals_cc_net(expected, docs):
    lid = LanguageIdentifier(paths.lid_model())
    got = [(d["id"], *lid.predict(docs[d["id"]])) for d in expected["documents"]]
    assert got == [(d["id"], d["language"], d["language_score"]) for d in expected["documents"]]


def test_perplexity_equals_cc_net(expected, docs, lm_dir):
    scorer = PerplexityScorer(LMPaths.in_dir(lm_dir))
    for d in expected["documents"]:
        text = docs[d["id"]]
        assert sha1(normalize(text)) == d["normalized_sha1"], d["id"]
        assert sha1(scorer.tokenize(text)) == d["tokenized_sha1"], d["id"]
        assert scorer.score(text) == d["perplexity"], d["id"]
    assert len(expected["documents"]) == len(docs) > 30
