"""The schemas every package shares: documents (every source pipeline's output) and token
shards (``llama tokenize``'s output, the trainer's input)."""
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


# llama tokenize's packed sequences: ids, the real length, and the documents each row holds
TOKEN_SCHEMA = pa.schema([
    ("tokens", pa.list_(pa.int32())),
    ("length", pa.int32()),
    ("doc_ids", pa.list_(pa.string())),
    ("sources", pa.list_(pa.string())),
    ("doc_starts", pa.list_(pa.int32())),
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
