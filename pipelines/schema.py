"""The document schema shared by every source pipeline."""
from __future__ import annotations

import pyarrow as pa

DOC_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("url", pa.string()),
    ("text", pa.string()),
    ("language", pa.string()),
    ("lang_score", pa.float32()),
    ("perplexity", pa.float32()),
    ("bucket", pa.string()),
    ("metadata", pa.map_(pa.string(), pa.string())),
])


def make_doc(id: str, source: str, text: str, url: str = "", language: str = "",
             lang_score: float | None = None, perplexity: float | None = None,
             bucket: str = "", metadata: dict | None = None) -> dict:
    return {"id": id, "source": source, "url": url, "text": text, "language": language,
            "lang_score": lang_score, "perplexity": perplexity, "bucket": bucket,
            "metadata": {str(k): str(v) for k, v in (metadata or {}).items()}}


def rows_to_table(rows: list[dict], schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    """Rows as a table of ``schema``; a dict ``metadata`` becomes a string->string map."""
    if "metadata" in schema.names:
        rows = [dict(r, metadata=[(str(k), str(v)) for k, v in (r.get("metadata") or {}).items()])
                for r in rows]
    return pa.Table.from_pylist(rows, schema=schema)


def open_shard(path, column: str, kind: str):
    """``pq.ParquetFile`` of a shard that must have ``column``; else a one-line InputError."""
    import pyarrow.parquet as pq

    from filters.errors import InputError

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a non-Parquet file
        raise InputError(f"{path}: not a readable Parquet file ({e.__class__.__name__}: {e})") from None
    if column not in pf.schema_arrow.names:
        raise InputError(f"{path}: not a {kind} shard (no '{column}' column)")
    return pf


def shard_files(inputs: list[str], hint: str = "") -> list:
    """The Parquet shards named in ``inputs`` or found under the directories named;
    a missing path or a directory without shards is a one-line InputError."""
    from pathlib import Path

    from filters.errors import InputError
    from filters.paths import walk_files

    files = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise InputError(f"{item}: no such file or directory")
        found = [p] if p.is_file() else walk_files(p, (".parquet",))
        if not found:
            raise InputError(f"{item}: no document shards (.parquet) here{hint}")
        files += found
    return files
