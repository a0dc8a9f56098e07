"""RedPajama-1T GitHub parity on the shared GitHub sample: skips, content hash, header
cleaning, file statistics and the discard decision, as RedPajama's own code computes them
(values recorded by ``generate_redpajama_github.py``; see README.md here)."""
import hashlib
import json

import pytest

from core import paths
from filters.github import TokenCounter, clean_copyright_comments, discard_reason, file_stats, skip_reason
from tests.reference.generate_redpajama_github import EXPECTED, sample_files


@pytest.fixture(scope="module")
def expected():
    return json.loads(EXPECTED.read_text())["files"]


def test_github_cleaning_and_filters_equal_redpajama(expected, data):
    files = {(repo, path): content for repo, path, content in sample_files(data)}
    assert len(files) == len(expected) > 30
    count_tokens = TokenCounter(str(paths.llama_tokenizer()))
    kept = 0
    for e in expected:
        content, path = files[e["repo"], e["path"]], e["path"]
        assert (skip_reason(path) is not None) == e["skipped"], path
        if e["skipped"]:
            continue
        assert hashlib.md5(content.encode("utf-8")).hexdigest() == e["md5"]
        text = clean_copyright_comments(content)
        assert hashlib.sha1(text.encode("utf-8")).hexdigest() == e["cleaned_sha1"], path
        assert file_stats(text) == e["stats"], path
        assert (discard_reason(text, path, count_tokens) is not None) == e["discard"], path
        kept += not e["discard"]
    assert 0 < kept < len(expected)
