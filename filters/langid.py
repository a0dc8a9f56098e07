"""fastText language identification (lid.176), as cc_net applies it to a whole document."""
from __future__ import annotations

from pathlib import Path


class LanguageIdentifier:
    def __init__(self, model_path: str | Path):
        from core import fs

        model_path = fs.stage(str(model_path), "fastText language-ID model")  # gs:// -> local cache
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-model warning
        self.model = fasttext.load_model(str(model_path))

    def predict(self, text: str) -> tuple[str, float]:
        """Top language code and its probability (cc_net: newlines replaced by spaces)."""
        labels, scores = self.model.predict(text.replace("\n", " "), k=1)
        if not labels:
            return "unk", 0.0
        return labels[0].replace("__label__", ""), float(min(scores[0], 1.0))
