"""C4's page cleaning, after tfds ``c4_utils.clean_page`` and its bad-words filter.

Per line (stripped): drop lines with a word over 1000 characters; remove citation
markers ([1], [edit], [citation needed]); keep only lines ending in . ? ! or "
(but not "..."), with at least 5 words; drop lines containing "javascript" or one
of the cookie/privacy/terms phrases.  The whole page is dropped on "lorem ipsum" or
a "{" in a kept-so-far line, on fewer than 3 sentences, or on a match of a word of
the LDNOOBW English list (word-boundary match on the lower-cased page, as tfds).

Sentences are counted as tfds counts them -- NLTK's punkt English model
(``nltk.data.load("tokenizers/punkt/english.pickle")``; NLTK >= 3.9 ships the same
parameters as ``punkt_tab``, which ``make setup`` downloads) -- when the model is installed
(``splitter="punkt"``).  Without it (an offline machine) ``splitter="rule"`` counts an end mark
followed by white space and an upper-case letter, digit or quote: a documented
approximation, chosen with a warning and recorded in the step's stats.json.
"""
from __future__ import annotations

import importlib.util
import os
import re
import stat
import sys
import tempfile
import threading
import types
import zipfile
from functools import lru_cache
from importlib import resources

from core.errors import InputError

CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
END_MARKS = (".", "?", "!", '"')
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                     "use of cookies", "use cookies")
MIN_WORDS_PER_LINE = 5
MIN_NUM_SENTENCES = 3
MAX_WORD_LENGTH = 1000
_SENTENCE_END_RE = re.compile(r"[.?!][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


SPLITTERS = ("punkt", "rule")
PUNKT_MISSING = ("NLTK's punkt model is not installed where NLTK reads it (tfds counts C4's sentences with "
                 "it): run `.venv/bin/python -m nltk.downloader punkt_tab` (NLTK reads no linked model "
                 "file, nothing outside its data directories), or pass --sentences rule")


_PUNKT_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _punkt():
    """NLTK's ``PunktTokenizer("english")``, loaded without NLTK's package import when no one in
    the process has imported NLTK yet.

    Importing any NLTK module runs ``nltk/__init__.py`` first, which imports nearly all of NLTK
    and with it SciPy and scikit-learn: ~1.5 s and ~180 MB in a fresh interpreter, in every
    worker process that counts a sentence.  ``nltk/tokenize/punkt.py`` itself needs a dozen of
    NLTK's modules (data, pathsec, probability, ...) and none of SciPy's.  So while punkt's module
    and the model load, NLTK's two packages on the way (``nltk``, ``nltk.tokenize``) stand in
    ``sys.modules`` as empty packages over NLTK's own directories; after, every NLTK module is
    taken out of ``sys.modules`` again.  The tokenizer keeps the modules it runs with, and a later
    ``import nltk`` anywhere in the process imports NLTK whole, as if this had not happened.  The
    splitting is NLTK's own code from the same files, so the count is tfds' (a test compares it
    with ``nltk.sent_tokenize``).  Should that import fail (an NLTK laid out otherwise), NLTK is
    imported whole.  Another thread importing NLTK during the load would see the stand-ins: our
    workers import NLTK nowhere else."""
    with _PUNKT_LOCK:
        spec = None if "nltk" in sys.modules else importlib.util.find_spec("nltk")
        if spec is not None:
            root = os.path.dirname(spec.origin)
            try:
                for name, path in (("nltk", root), ("nltk.tokenize", os.path.join(root, "tokenize"))):
                    stand_in = types.ModuleType(name)
                    stand_in.__path__ = [path]
                    sys.modules[name] = stand_in
                return _load_punkt()
            except (ImportError, AttributeError):
                pass
            finally:
                for name in [m for m in sys.modules if m == "nltk" or m.startswith("nltk.")]:
                    del sys.modules[name]
        return _load_punkt()


def _load_punkt():
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")


PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def nltk_data_dirs() -> list[str]:
    """Where NLTK looks for its data, in its order: ``nltk.data.path`` as NLTK (3.9, 3.10) builds
    it on a POSIX system (tests/test_sources.py holds the two equal)."""
    dirs = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    if "APPENGINE_RUNTIME" not in os.environ and os.path.expanduser("~/") != "~/":
        dirs.append(os.path.expanduser("~/nltk_data"))
    return dirs + [os.path.join(sys.prefix, "nltk_data"), os.path.join(sys.prefix, "share", "nltk_data"),
                   os.path.join(sys.prefix, "lib", "nltk_data"), "/usr/share/nltk_data",
                   "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]


def punkt_available() -> bool:
    """Whether NLTK and its punkt_tab English model are installed, looked up as
    ``PunktTokenizer("english")`` looks it up -- ``nltk.data.find``: the first data directory
    holding ``tokenizers/punkt_tab/english/``, else the first holding ``tokenizers/punkt_tab.zip``,
    skipping a location another account could write to (NLTK >= 3.10 refuses those: owned by
    neither this user nor root, or group/world-writable) or, for the archive, a link (it fails to
    open there); then the model's four files, none a link (NLTK's read of a found model refuses
    to follow one; checked against NLTK 3.10.4 in tests/test_sources.py) -- without
    importing NLTK.  Its import brings in SciPy and scikit-learn, ~95 MB and ~2 s in the process
    that launches C4 and only asks here; and scikit-learn's import sets variables in the
    environment, which made the SDK workers that process had forked unusable
    (``local_runner._take_waiting``).  Elsewhere than POSIX, NLTK's own lookup."""
    if importlib.util.find_spec("nltk") is None:
        return False
    if os.name != "posix":
        try:
            _punkt()
        except (ImportError, LookupError):
            return False
        return True
    dirs = nltk_data_dirs()
    roots = _nltk_read_roots(dirs)
    for d in dirs:
        model = os.path.join(d, "tokenizers", "punkt_tab", "english")
        if os.path.isdir(model) and _trusted(d, ("tokenizers", "punkt_tab", "english"), os.listdir(model)):
            # found: its files are read here or nowhere, never through a link (NLTK's read refuses
            # to follow one, after find() has passed it) nor outside NLTK's data directories
            files = [os.path.join(model, f) for f in PUNKT_FILES]
            return all(os.path.isfile(f) and not os.path.islink(f) and _within(f, roots) for f in files)
    for d in dirs:
        packed = os.path.join(d, "tokenizers", "punkt_tab.zip")
        # an archive NLTK may not open (a link, or outside its data directories): NLTK looks on
        if (os.path.isfile(packed) and not os.path.islink(packed) and _within(packed, roots)
                and _trusted(d, ("tokenizers", "punkt_tab.zip"))):
            try:
                with zipfile.ZipFile(packed) as z:
                    names = set(z.namelist())
            except (OSError, zipfile.BadZipFile):
                return False
            return all(f"punkt_tab/english/{f}" in names for f in PUNKT_FILES)
    return False


def _nltk_read_roots(data_dirs: list[str]) -> list[str]:
    """The directories NLTK (3.10) reads data from at all (``nltk.pathsec.validate_path``), links
    resolved: its data directories, and the temporary directory when that is private to this user."""
    roots = [os.path.realpath(d) for d in data_dirs]
    tmp = tempfile.gettempdir()
    if os.path.isdir(tmp) and _trusted(tmp, ()):
        roots.append(os.path.realpath(tmp))
    return roots


def _within(path: str, roots: list[str]) -> bool:
    """Whether ``path``, links resolved, lies in one of ``roots``."""
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _trusted(root: str, rel: tuple[str, ...], entries=()) -> bool:
    """What ``nltk.data.find`` (3.10) requires of a data location before it reads from it:
    ``root`` and each path down ``rel`` under it, links followed, owned by this user or root and
    writable by no one else; each of the ``entries`` of the last judged as it stands (``lstat``):
    a link by its own owner only, anything else like the directories."""
    def owned(st):
        return st.st_uid in (os.geteuid(), 0)

    def private(st):
        return owned(st) and not st.st_mode & 0o022

    chain = [root]
    for part in rel:
        chain.append(os.path.join(chain[-1], part))
    try:
        if not all(private(os.stat(p)) for p in chain):
            return False
        for e in entries:
            st = os.lstat(os.path.join(chain[-1], e))
            if not (owned(st) if stat.S_ISLNK(st.st_mode) else private(st)):
                return False
    except OSError:
        return False
    return True


def default_splitter() -> str:
    return "punkt" if punkt_available() else "rule"


def count_sentences(text: str, splitter: str = "rule") -> int:
    """tfds' ``len(_get_sentences(text))`` with ``splitter="punkt"``; else the rule."""
    if splitter == "punkt":
        try:
            return len(_punkt().tokenize(text))
        except (ImportError, LookupError):
            raise InputError(PUNKT_MISSING) from None
        except PermissionError as e:  # NLTK refuses to read a model file (a link, or writable by others)
            raise InputError(f"{e} (or pass --sentences rule)") from None
    return len(_SENTENCE_END_RE.findall(text)) + 1 if text.strip() else 0


def clean_page(text: str, counts: dict | None = None, splitter: str = "rule") -> str | None:
    """The cleaned page text, or None if the page is dropped.  ``counts`` collects reasons."""
    counts = counts if counts is not None else {}

    def inc(key):
        counts[key] = counts.get(key, 0) + 1

    valid, sentences = [], 0
    for line in text.splitlines():
        line = line.strip()
        if any(len(w) > MAX_WORD_LENGTH for w in line.split()):
            inc("line_too_long_word")
            continue
        line = CITATION_RE.sub("", line)
        if not line.endswith(END_MARKS) or line.endswith(ELLIPSIS):
            inc("line_no_endmark")
            continue
        if len(line.split()) < MIN_WORDS_PER_LINE:
            inc("line_too_short")
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            inc("page_lorem_ipsum")
            return None
        if "javascript" in lower:
            inc("line_javascript")
            continue
        if "{" in line:
            inc("page_curly_bracket")
            return None
        if any(p in lower for p in POLICY_SUBSTRINGS):
            inc("line_policy")
            continue
        sentences += count_sentences(line, splitter)
        valid.append(line)
    if sentences < MIN_NUM_SENTENCES:
        inc("page_too_few_sentences")
        return None
    return "\n".join(valid).strip()


def badwords_pattern(words, lang: str = "en") -> re.Pattern:
    """tfds ``get_badwords_filter_fn`` (tensorflow/datasets@3e77995 ``c4_utils.py``): the list's
    stripped lines (``c4.py``: ``l.strip() for l in f``), escaped, as alternatives flanked by a
    non-word character or the text's start/end (not for ja/th/zh, which tfds matches bare);
    searched in the lower-cased page.  Alternatives are ordered longest first, which cannot
    change whether the pattern is found."""
    entries = sorted({w.strip() for w in words} - {""}, key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in entries)
    if lang in ("ja", "th", "zh"):
        return re.compile(alternatives)
    return re.compile(r"(?:\W|^)(?:%s)(?:\W|$)" % alternatives)


@lru_cache(maxsize=None)
def badwords_regex(lang: str = "en") -> re.Pattern:
    """The shipped LDNOOBW list of ``lang`` (``filters/data``, the commit tfds pins)."""
    words = resources.files("filters").joinpath("data", f"ldnoobw_{lang}.txt").read_text("utf-8")
    return badwords_pattern(words.splitlines(), lang)


LANG_IDS = ("tfds", "fasttext")  # C4's language filters: tfds' langdetect (default), lid.176


def langdetect_english(text: str, min_probability: float = 0.99) -> str | None:
    """tfds ``c4_utils.detect_english`` (3e77995), the language filter of the public C4:
    langdetect with ``DetectorFactory.seed = 0``, the best prediction must be ``en`` with
    probability >= 0.99.  None to keep, else the reason tfds counts."""
    import langdetect

    langdetect.DetectorFactory.seed = 0
    try:
        predictions = langdetect.detect_langs(text)
    except langdetect.lang_detect_exception.LangDetectException:
        return "langdetect_exception"
    if not predictions:
        return "no_predictions"
    best = predictions[0]
    if best.prob < min_probability:
        return "low_confidence"
    if best.lang != "en":
        return best.lang
    return None


def has_badword(text: str, lang: str = "en") -> bool:
    return badwords_regex(lang).search(text.lower()) is not None
