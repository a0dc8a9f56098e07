"""cc_net normalisation/hashing and the lenient WARC/WET reader, on the bundled CC files."""
import gzip
import re

import pytest

from core.errors import InputError
from filters.text import line_hash, normalize, normalize_for_dedup
from filters.warc import ReadReport, check_warc_file, iter_warc_records, read_documents


def test_dedup_normalisation_matches_cc_net():
    # digits -> 0, lower-case, Unicode punctuation removed (ASCII punctuation kept)
    assert normalize_for_dedup("  Copyright © 2019 “ACME”, Inc.  ") == "copyright © 0000 acme, inc."
    assert line_hash("Page 12 of 40") == line_hash("page 99 OF 17")
    assert line_hash("Privacy Policy") != line_hash("Privacy Policy!")
    # the LM normaliser also strips accents and maps Unicode punctuation to ASCII
    assert normalize("Menú principal — Ir") == "menu principal  -  ir"


def test_fast_normaliser_equals_cc_net_per_character_code(data):
    """strip_accents / replace_unicode_punct are a regex and str.translate here; cc_net
    (text_normalizer.py) loops over characters.  Same output on every line of the real
    multilingual samples (uk, el, bg, en Wikipedia; the CC pages), plus Hangul and combining
    marks on their own."""
    import unicodedata

    from filters.text import UNICODE_PUNCT, replace_unicode_punct, strip_accents
    from filters.wikipedia import iter_articles
    from pipelines.ccnet import read_cc_file

    def cc_net_strip_accents(line):
        nfd = unicodedata.normalize("NFD", line)
        output = [c for c in nfd if unicodedata.category(c) != "Mn"]
        if len(output) == line:  # (sic) cc_net: never true
            return line
        return "".join(output)

    def cc_net_replace_unicode_punct(text):
        return "".join(UNICODE_PUNCT.get(c, c) for c in text)

    from itertools import islice

    texts = [p.text for dump in sorted((data / "wikipedia").glob("*wiki-*"))
             for p in islice(iter_articles(str(dump)), 15)]
    texts += [d["text"] for f in sorted((data / "cc").glob("*.warc*")) for d in read_cc_file(str(f), lambda *a: None)]
    lines = [ln for t in texts for ln in t.split("\n")] + ["한국어 문장", "e\u0301te\u0301 — «ok»", "Ǆemal ﬁ"]
    assert sum(not ln.isascii() for ln in lines) > 1_000
    for ln in lines:
        assert strip_accents(ln) == cc_net_strip_accents(ln), ln
        assert replace_unicode_punct(ln) == cc_net_replace_unicode_punct(ln), ln

    def cc_net_normalize(line):  # text_normalizer.normalize with its defaults, step by step
        line = line.strip()
        if not line:
            return line
        line = cc_net_strip_accents(line.lower())
        line = cc_net_replace_unicode_punct(re.sub(r"\d", "0", line))
        return "".join(c for c in line if not (ord(c) < 32 or 127 <= ord(c) < 160))

    # normalize fuses the steps (short lines, and whole documents as perplexity scores them)
    for t in lines + texts + ["\n".join(texts)] + ["١٢٣ ４２ “x”—y\u200b\x85 Ⅻ ²", "  \t  "]:
        assert normalize(t) == cc_net_normalize(t), t[:200]


def test_wet_with_wrong_content_length_keeps_every_record(data):
    path = data / "cc" / "cc_net_test_sample.warc.wet"
    import warcio

    # A strict reader loses records on this real cc_net fixture...
    strict = []
    with pytest.raises(Exception):
        for rec in warcio.ArchiveIterator(open(path, "rb")):
            strict.append(rec.content_stream().read())
    # ...the lenient reader recovers all three pages, whole, and counts the anomaly.
    report = ReadReport()
    docs = list(read_documents(str(path), report))
    assert [d[1] for d in docs] == ["http://sample_english.com", "http://sample_chinese.zh",
                                    "http://sample_russian.ru"]
    english = docs[0][2]
    assert english.startswith("Famous Mark Twain Quotes")
    assert english.endswith("Truth isn't.")
    assert report.length_mismatch == 4 and report.truncated == 0


def test_warc_response_records_become_page_text(data):
    report = ReadReport()
    docs = list(read_documents(str(data / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz"), report))
    assert report.records == 50 and report.length_mismatch == 0
    assert len(docs) == 16  # one per crawled page; requests/metadata/warcinfo skipped
    by_url = {d[1]: d[2] for d in docs}
    # gb2312 and windows-1251 pages are decoded, not mojibake
    assert "政务公开" in by_url["http://003338.cn/l41/481397.html"]
    assert "Центральный офис" in by_url["http://01spb.ru/company/"]
    assert "<div" not in "".join(by_url.values())


def test_truncated_gzip_delivers_records_before_the_cut(data, tmp_path):
    raw = (data / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz").read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    report = ReadReport()
    docs = list(read_documents(str(cut), report))
    assert 3 <= len(docs) < 16
    assert report.stream_error or report.truncated


def test_truncated_plain_wet_skips_only_the_last_record(data, tmp_path):
    body = gzip.decompress((data / "cc" / "whirlwind_CC-MAIN-2024-22" / "whirlwind.warc.wet.gz").read_bytes())
    cut = tmp_path / "cut.wet"
    cut.write_bytes(body[:-500])
    report = ReadReport()
    recs = list(iter_warc_records(str(cut), report))
    assert [r.type for r in recs] == ["warcinfo"] and report.truncated == 1


def test_non_warc_input_is_a_clear_error(data, tmp_path):
    with pytest.raises(InputError, match="not a WARC/WET file"):
        check_warc_file(str(data / "books" / "pg345_dracula.txt"))
    bad = tmp_path / "bad.warc.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputError, match="bad.warc.gz"):
        check_warc_file(str(bad))
    with pytest.raises(InputError, match="no such file"):
        check_warc_file(str(tmp_path / "missing.wet"))


def test_old_warc_versions_bracketed_uris_and_cr_cr_lf_read_like_the_original(data, tmp_path):
    """A real WET file rewritten as an old crawler would write it -- ``WARC/0.17`` headers,
    ``<...>`` around WARC-Target-URI (wget, as warcio strips), ``\\r\\r\\n`` line ends in the
    text -- yields the same pages, URLs and text as the original."""
    import re

    body = gzip.decompress((data / "cc" / "whirlwind_CC-MAIN-2024-22" / "whirlwind.warc.wet.gz").read_bytes())
    original = [(d[1], d[2]) for d in read_documents(_write(tmp_path / "orig.wet", body))]
    assert original and all(url for url, _ in original)

    def old_record(m: re.Match) -> bytes:
        head, block = m.group(1), m.group(2)
        head = head.replace(b"WARC/1.0\r\n", b"WARC/0.17\r\n", 1)
        head = re.sub(rb"(WARC-Target-URI: )(\S+)", rb"\1<\2>", head)
        block = block.replace(b"\n", b"\r\r\n")
        head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(block), head)
        return head + block

    old = re.sub(rb"(WARC/1\.0\r\n.*?\r\n\r\n)(.*?)(?=\r\n\r\nWARC/1\.0\r\n|\r\n\r\n\Z)",
                 old_record, body, flags=re.S)
    assert old.count(b"WARC/0.17\r\n") == body.count(b"WARC/1.0\r\n") and b"\r\r\n" in old
    report = ReadReport()
    rewritten = [(d[1], d[2]) for d in read_documents(_write(tmp_path / "old.wet", old), report)]
    assert rewritten == original and report.length_mismatch == 0 and report.garbage_lines == 0


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_language_id_dequantised_predicts_bit_identically(data):
    """lid.176.ftz is made dense in memory for speed; every prediction (labels and
    probabilities, top 3) equals the quantised model's on the real multilingual texts (the
    UDHR paragraphs in their languages, the Wikipedia articles, the CC pages)."""
    import json
    from itertools import islice

    from core import paths
    from filters.langid import LanguageIdentifier, quantized_rows
    from filters.wikipedia import iter_articles
    from pipelines.ccnet import read_cc_file

    texts = [json.loads(line)["text"] for line in open(data / "langid" / "udhr_paragraphs.jsonl", encoding="utf-8")]
    texts += [p.text for dump in sorted((data / "wikipedia").glob("*wiki-*")) for p in islice(iter_articles(str(dump)), 20)]
    texts += [d["text"] for f in sorted((data / "cc").glob("*.warc*")) for d in read_cc_file(str(f), lambda *a: None)]
    dense, quant = LanguageIdentifier(paths.lid_model()), LanguageIdentifier(paths.lid_model(), dequantize=False)
    assert dense.dequantized and not quant.dequantized and quantized_rows(str(paths.lid_model())) == 50_000
    langs = set()
    for t in texts:
        t = t.replace("\n", "")
        (a, p), (b, q) = dense.model.predict(t, k=3), quant.model.predict(t, k=3)
        assert a == b and p.tobytes() == q.tobytes(), t[:80]
        langs.add(a[0])
    assert len(texts) > 500 and len(langs) >= 20
