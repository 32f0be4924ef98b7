"""A model folder's ``tokenizer.json`` read with the ``tokenizers`` library alone (no transformers).

:class:`FastTokenizer` offers the small part of the transformers tokenizer interface
that anyner uses (``__call__`` on pre-split words with ``word_ids()``, ``pad_token_id``,
``get_vocab``, ``add_tokens``, ``convert_tokens_to_ids``, ``len``, ``model_max_length``),
over the same Rust tokenizer that transformers' fast tokenizers wrap, called the same
way: ``encode(words, is_pretokenized=True)`` with truncation and padding off. So the
subword ids are the same as with ``AutoTokenizer`` (a test compares them), and the
ONNX runtime needs neither torch nor transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"


class _Encoding(dict):
    """What ``tokenizer(...)`` returns: ``enc["input_ids"]`` (one sequence) and ``enc.word_ids()``."""

    def __init__(self, ids: list[int], word_ids: list[int | None]):
        super().__init__(input_ids=ids)
        self._word_ids = word_ids

    def word_ids(self) -> list[int | None]:
        return self._word_ids


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` with the interface anyner's prompt builder calls."""

    def __init__(self, backend: Any, config: dict[str, Any] | None = None, name_or_path: str = ""):
        self.backend = backend
        self.backend.no_truncation()
        self.backend.no_padding()
        self.config = dict(config or {})
        self.name_or_path = name_or_path
        limit = self.config.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, int | float) and limit < 1e9 else 512
        pad = self.config.get("pad_token")
        if isinstance(pad, dict):  # older files spell special tokens as AddedToken objects
            pad = pad.get("content")
        self.pad_token_id = self.backend.token_to_id(pad) if isinstance(pad, str) else None

    @classmethod
    def from_folder(cls, folder: str | Path) -> FastTokenizer:
        """The tokenizer of a model folder (``tokenizer.json``, and ``tokenizer_config.json`` if any).

        Raises:
            FileNotFoundError: the folder has no ``tokenizer.json``.
            ValueError: the file cannot be read.
        """
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = folder / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {TOKENIZER_FILE}: without transformers, anyner reads the tokenizer "
                "from that file only (pip install 'anyner[torch]' reads the other forms too)"
            )
        from anyner.checkpoint import CheckpointError  # a ValueError, as the torch path raises

        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust library raises plain Exception for a damaged file
            raise CheckpointError(f"cannot load the tokenizer from {path}: {type(e).__name__}: {e}") from e
        config: dict[str, Any] = {}
        for name in (SPECIAL_TOKENS_FILE, CONFIG_FILE):  # the config's values win, as in transformers
            if (folder / name).is_file():
                try:
                    config.update(json.loads((folder / name).read_text(encoding="utf-8")))
                except ValueError as e:  # bad JSON, or bytes that are not UTF-8
                    raise CheckpointError(f"cannot load the tokenizer from {folder / name}: {e}") from e
        return cls(backend, config, str(folder))

    def __call__(
        self,
        words: Sequence[str],
        is_split_into_words: bool = True,
        add_special_tokens: bool = True,
        verbose: bool = True,
    ) -> _Encoding:
        if not is_split_into_words:
            raise ValueError("FastTokenizer reads words that are already split (is_split_into_words=True)")
        enc = self.backend.encode(list(words), is_pretokenized=True, add_special_tokens=add_special_tokens)
        return _Encoding(list(enc.ids), list(enc.word_ids))

    def encode_texts(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Whole texts (a bi-encoder's labels) -> padded ``input_ids`` and ``attention_mask`` (int64
        numpy, (N, T)), with special tokens, cut to ``model_max_length`` keeping the closing token:
        what transformers gives with ``truncation=True, padding="longest"``."""
        import numpy as np

        rows = [list(e.ids) for e in self.backend.encode_batch(list(texts), add_special_tokens=True)]
        limit = self.model_max_length
        rows = [r if len(r) <= limit else r[: limit - 1] + r[-1:] for r in rows]
        T = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), T), self.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return ids, mask

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    def add_tokens(self, tokens: Sequence[str], special_tokens: bool = False) -> int:
        from tokenizers import AddedToken

        new = [AddedToken(t, special=special_tokens, normalized=not special_tokens) for t in tokens]
        return self.backend.add_special_tokens(new) if special_tokens else self.backend.add_tokens(new)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / TOKENIZER_FILE))
        if self.config:
            (folder / CONFIG_FILE).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")


def encode_label_texts(tokenizer: Any, texts: list[str]) -> tuple[Any, Any]:
    """Whole texts (a bi-encoder's labels) -> padded subword ids and mask (int64 numpy, (N, T)),
    with a :class:`FastTokenizer` or a transformers tokenizer alike."""
    import numpy as np

    if isinstance(tokenizer, FastTokenizer):
        return tokenizer.encode_texts(texts)
    enc = tokenizer(texts, truncation=True, padding="longest", return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


__all__ = ["FastTokenizer", "encode_label_texts"]
