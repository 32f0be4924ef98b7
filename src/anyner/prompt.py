"""Labels + words -> subword ids of ``<<ENT>> label ... <<SEP>> words``.

This module is the only owner of the prompt layout. The tokenizer is called the
way GLiNER calls it (``is_split_into_words=True``: each word on its own), so each
word's subwords do not depend on its neighbours. That lets the prompt of a label
set be tokenized once and cached, and each text's words be tokenized once however
many windows and label groups it is scored in. A self-check at start-up falls back
to tokenizing whole prompts if a tokenizer ever breaks that independence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from anyner.config import AnyNERConfig

# A lone surrogate (e.g. from undecodable bytes read with ``surrogateescape``) is a valid
# Python str but cannot be encoded to UTF-8, which the Rust tokenizers need. It is read as
# U+FFFD, one character for one, so that character offsets do not move.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Prompt:
    """The tokenized label part of a prompt, ``<<ENT>> l1 <<ENT>> l2 ... <<SEP>>``."""

    ids: tuple[int, ...]
    label_offsets: tuple[int, ...]  # offset of each label's vector token within ``ids``


@dataclass(frozen=True, slots=True)
class PromptedInput:
    """One sequence for the encoder: ``prefix + prompt + words + suffix``."""

    input_ids: list[int]
    word_index: list[int]  # first-subword position of each word, -1 for a word with no subword
    label_index: list[int]  # position of each label's vector token


class PromptBuilder:
    """Builds encoder inputs for a tokenizer and a model config."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: AnyNERConfig, max_tokens: int):
        self.tokenizer = tokenizer
        self.ent_token = config.ent_token
        self.sep_token = config.sep_token
        self.label_shift = 0 if config.embed_ent_token else 1
        self.max_tokens = max_tokens
        from anyner.model_types import RELEX, get

        # bi-encoders read the words alone; their labels go through the label encoder
        self.labels_in_prompt = get(config.model_type).labels_in_prompt
        # relation-extraction models read ``<<SEP>> <<REL>> relation ... <<SEP>>`` after the labels;
        # without relations (entities alone) that section is a second <<SEP>>, as in GLiNER
        self.closing = [self.sep_token] * (2 if config.model_type == RELEX else 1)
        probe = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
        first = probe.word_ids().index(0)
        last = len(probe.word_ids()) - 1 - probe.word_ids()[::-1].index(0)
        self.prefix = list(probe["input_ids"][:first])  # e.g. [CLS]
        self.suffix = list(probe["input_ids"][last + 1 :])  # e.g. [SEP]
        self.prompt = lru_cache(maxsize=256)(self._prompt)
        if not self._check_concatenation():
            raise NotImplementedError(
                f"tokenizer {type(tokenizer).__name__} ({tokenizer.name_or_path}) tokenizes a word differently "
                "depending on its neighbours, which this prompt builder does not support"
            )

    def word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        """Subword ids of each word, tokenized on its own (an empty list for none)."""
        pieces: list[list[int]] = [[] for _ in words]
        if not words:
            return pieces
        words = list(words)
        if _SURROGATE.search("".join(words)):
            words = [_SURROGATE.sub("\ufffd", w) for w in words]
        # verbose=False: these are the pieces of many words, never one encoder input, so
        # transformers' warning about sequences longer than the model's maximum does not apply
        enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
        for tok, w in zip(enc["input_ids"], enc.word_ids(), strict=True):
            if w is not None:
                pieces[w].append(tok)
        return pieces

    def _prompt(self, labels: tuple[str, ...]) -> Prompt:
        if not self.labels_in_prompt:
            return Prompt((), tuple(range(len(labels))))  # label_index: each label's place in its group
        words: list[str] = []
        for label in labels:
            words += [self.ent_token, label]
        words += self.closing
        pieces = self.word_pieces(words)
        ids: list[int] = []
        offsets = []
        for i, p in enumerate(pieces):
            if i % 2 == 0 and i < 2 * len(labels):
                offsets.append(len(ids) + self.label_shift)
            ids += p
        return Prompt(tuple(ids), tuple(offsets))

    def build(self, labels: tuple[str, ...], pieces: Sequence[list[int]]) -> PromptedInput:
        """The encoder input for one label group and one window of words (their ``word_pieces``)."""
        prompt = self.prompt(labels)
        start = len(self.prefix)
        ids = self.prefix + list(prompt.ids)
        word_index = []
        for p in pieces:
            word_index.append(len(ids) if p else -1)
            ids += p
        ids += self.suffix
        if not self.labels_in_prompt:
            return PromptedInput(ids, word_index, list(prompt.label_offsets))
        return PromptedInput(ids, word_index, [start + o for o in prompt.label_offsets])

    def prompt_length(self, labels: tuple[str, ...]) -> int:
        """Subwords the prompt and special tokens take, before any word."""
        return len(self.prefix) + len(self.prompt(labels).ids) + len(self.suffix)

    def _check_concatenation(self) -> bool:
        words = ["Héllo", "world", "!", "2024-05", "naïve", "東京", "e-mail", "x"]
        labels = ("person", "date")
        built = self.build(labels, self.word_pieces(words))
        prompt = [self.ent_token, labels[0], self.ent_token, labels[1], *self.closing]
        full = self.tokenizer(
            [*(prompt if self.labels_in_prompt else []), *words],
            is_split_into_words=True,
            add_special_tokens=True,
        )
        return list(full["input_ids"]) == built.input_ids
