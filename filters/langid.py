"""fastText language identification (lid.176), as cc_net applies it to a whole document
(facebookresearch/cc_net@bda555b ``cc_net/split_by_lang.py``, ``Classifier``): the lines are
glued with no separator (``text.replace("\\n", "")``), the top label is taken, and its score is
rounded to two decimals (``scores.round(2)``) before any threshold is applied."""
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
        """Top language code and its score rounded as cc_net rounds it."""
        labels, scores = self.model.predict(text.replace("\n", ""), k=1)
        if not labels:
            return "unk", 0.0
        return labels[0].replace("__label__", ""), float(scores.round(2)[0])
