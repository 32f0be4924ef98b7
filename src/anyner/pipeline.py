"""``AnyNER``: the public prediction API. It chains the steps of the data path

    text -> words -> prompt -> batch -> model -> probabilities -> candidates -> greedy -> entities

and owns the device, batch size, long-text windows and label groups. The maths
lives in ``model/``, the prompt layout in ``prompt.py``, decoding in ``decode.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyner import checkpoint
from anyner.batching import collate
from anyner.config import AnyNERConfig
from anyner.decode import Candidate, Candidates, candidates, greedy
from anyner.model.gliner import GLiNERModel
from anyner.prompt import PromptBuilder
from anyner.types import Entity, Word
from anyner.words import split_words

Labels = Sequence[str] | Mapping[str, str]


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Labels as the caller names them, and the prompt text the model reads for each."""

    names: tuple[str, ...]
    prompts: tuple[str, ...]


@dataclass(slots=True)
class _Job:
    """One encoder sequence: a window of one text with one group of its labels."""

    text: int
    first_label: int  # index in the text's LabelSet of the group's first label
    n_labels: int
    word_start: int  # the window is words [word_start, word_start + n_words)
    n_words: int
    core: tuple[int, int]  # keep candidates starting in [core[0], core[1])
    prompted: Any


class AnyNER:
    """Open-type named entity recognition with a GLiNER span model.

    Example:
        >>> model = AnyNER.from_pretrained()  # the built-in model, offline
        >>> model.predict("Bill Gates founded Microsoft.", ["person", "organization"])
        [Entity(start=0, end=10, text='Bill Gates', label='person', ...), ...]
    """

    def __init__(
        self,
        model: GLiNERModel | None,
        tokenizer: Any,
        hf_config: Any,
        device: str | torch.device = "cpu",
        *,
        config: AnyNERConfig | None = None,
        runner: Callable[[dict[str, torch.Tensor]], Any] | None = None,
    ):
        """Assemble a model from its parts; most users call :meth:`from_pretrained` instead.

        ``runner`` replaces the torch network for prediction (e.g. an ONNX Runtime session
        wrapper): it takes the batch tensors and returns logits (B, W, K, C).
        """
        if model is None and (runner is None or config is None):
            raise ValueError("give a torch model, or a runner and a config")
        self.model = model.to(device).eval() if model is not None else None
        self.config: AnyNERConfig = config if config is not None else model.config
        self.runner = runner if runner is not None else self.model
        self.tokenizer = tokenizer
        self.hf_config = hf_config
        self.device = torch.device(device)
        self.max_tokens = _max_tokens(tokenizer, hf_config)
        self.prompts = PromptBuilder(tokenizer, self.config, self.max_tokens)
        self.window_overlap = max(2 * self.config.max_width, 64)
        self._group_cache: dict[tuple[LabelSet, int], list[tuple[int, int]]] = {}  # per label set, not per text

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        device: str = "cpu",
        backend: str = "torch",
        onnx_file: str | None = None,
    ) -> AnyNER:
        """Load a GLiNER span model from a local folder or a Hugging Face Hub id.

        Args:
            model: a folder holding ``gliner_config.json`` and weights, or a Hub id such
                as ``urchade/gliner_small-v2.1`` (fetched into the Hub cache). None loads
                the built-in model shipped with anyner.
            revision: Hub revision (branch, tag or commit).
            cache_dir: Hub cache folder.
            device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
            backend: ``"torch"``, or ``"onnx"`` to run a folder written by
                :func:`anyner.export_onnx.export_onnx` (``anyner export onnx``) with ONNX
                Runtime on the CPU (needs the ``onnxruntime`` package).
            onnx_file: with ``backend="onnx"``, the file to run: ``"model.onnx"`` (fp32,
                the default) or ``"model_int8.onnx"`` (the int8 export).
        """
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if onnx_file is not None and backend != "onnx":
            raise ValueError("onnx_file is only used with backend='onnx'")
        if backend == "onnx" and torch.device(device).type != "cpu":
            raise ValueError(f"the onnx backend runs on the CPU, not on {device!r}")
        if model is None:
            from anyner.builtin import builtin_model_path

            model = builtin_model_path()
        folder = checkpoint.resolve_folder(model, revision=revision, cache_dir=cache_dir)
        config = checkpoint.read_config(folder)
        tokenizer = checkpoint.load_tokenizer(folder, config)
        checkpoint.add_prompt_tokens(tokenizer, config)
        hf_config = checkpoint.encoder_hf_config(config)
        hf_config.vocab_size = config.vocab_size
        if backend == "onnx":
            from anyner.export_onnx import OnnxRunner, find_onnx_file

            runner = OnnxRunner(find_onnx_file(folder, onnx_file), config=config)
            return cls(None, tokenizer, hf_config, device=device, config=config, runner=runner)
        net = checkpoint.build_and_load(
            lambda: GLiNERModel(config, hf_config), checkpoint.weights_file(folder)
        )
        return cls(net, tokenizer, hf_config, device=device)

    @classmethod
    def from_encoder(cls, encoder: str | Path, device: str = "cpu", **config: Any) -> AnyNER:
        """A new model: a pretrained Hugging Face encoder and a randomly initialised head.

        Args:
            encoder: Hub id or local folder of the encoder.
            **config: :class:`AnyNERConfig` fields (``hidden_size``, ``span_mode``, ...).
        """
        cfg = AnyNERConfig(encoder=str(encoder), **config)
        hf_config = checkpoint.encoder_hf_config(cfg)  # the encoder's own vocabulary, to load its weights
        tokenizer = checkpoint.load_tokenizer(None, cfg)
        checkpoint.add_prompt_tokens(tokenizer, cfg)
        net = GLiNERModel(cfg, hf_config, pretrained_encoder=True)
        net.encoder.resize_vocab(cfg.vocab_size)
        hf_config.vocab_size = cfg.vocab_size
        return cls(net, tokenizer, hf_config, device=device)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``model.safetensors``, ``gliner_config.json`` and the tokenizer to ``folder``.

        The folder loads in anyner and in the ``gliner`` package.
        """
        import json

        from safetensors.torch import save_file

        if self.model is None:
            raise ValueError("this model runs on another backend and has no torch weights to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.hf_config.vocab_size = self.config.vocab_size
        save_file(checkpoint.gliner_state_dict(self.model), str(folder / checkpoint.SAFETENSORS_NAME))
        gliner_config = checkpoint.config_to_gliner(self.config, self.hf_config)
        (folder / checkpoint.CONFIG_NAME).write_text(
            json.dumps(gliner_config, indent=2) + "\n", encoding="utf-8"
        )
        self.tokenizer.save_pretrained(str(folder))
        return folder

    # ------------------------------------------------------------------ prediction

    def predict(
        self,
        text: str,
        labels: Labels,
        threshold: float | Mapping[str, float] = 0.5,
        flat: bool = True,
        multi_label: bool = False,
    ) -> list[Entity]:
        """Find entities of the given labels in one text.

        Args:
            text: any string; long texts are read in overlapping windows.
            labels: label names, or a dict label -> description (the model reads the
                description, the entity carries the label).
            threshold: minimum score, or a dict label -> threshold (others use 0.5).
            flat: no overlapping entities (True) or nested ones allowed (False).
            multi_label: let one span carry several labels.

        Returns:
            Entities sorted by start, with character offsets: ``text[e.start:e.end] == e.text``.
        """
        return self.predict_batch([text], labels, threshold=threshold, flat=flat, multi_label=multi_label)[0]

    def predict_batch(
        self,
        texts: Sequence[str],
        labels: Labels | Sequence[Labels],
        batch_size: int = 8,
        threshold: float | Mapping[str, float] = 0.5,
        flat: bool = True,
        multi_label: bool = False,
        progress: bool = False,
    ) -> list[list[Entity]]:
        """:meth:`predict` for many texts; ``labels`` is one label set or one per text."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; use predict() for one text")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        words = [split_words(t) for t in texts]
        return self._predict(texts, words, labels, batch_size, threshold, flat, multi_label, progress)

    def predict_words(
        self,
        words: Sequence[Sequence[str]],
        labels: Labels | Sequence[Labels],
        batch_size: int = 8,
        threshold: float | Mapping[str, float] = 0.5,
        flat: bool = True,
        multi_label: bool = False,
        progress: bool = False,
    ) -> list[list[Entity]]:
        """:meth:`predict_batch` for texts already split into words (e.g. CoNLL tokens).

        Each text is ``" ".join(words)``; entity offsets are characters of that string.
        """
        texts, split = [], []
        for i, ws in enumerate(words):
            if isinstance(ws, str) or not all(isinstance(w, str) and w and not w.isspace() for w in ws):
                raise TypeError(f"words[{i}] must be a list of non-blank strings")
            pos, row = 0, []
            for w in ws:
                row.append(Word(w, pos, pos + len(w)))
                pos += len(w) + 1
            texts.append(" ".join(ws))
            split.append(row)
        return self._predict(texts, split, labels, batch_size, threshold, flat, multi_label, progress)

    def _predict(
        self, texts, words, labels, batch_size, threshold, flat, multi_label, progress
    ) -> list[list[Entity]]:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        label_sets = self._label_sets(labels, len(texts))
        # Every argument is checked even when there is no text (or no word) to run on.
        unique = dict.fromkeys(label_sets or [self._label_set(labels)])
        checked = {ls: _thresholds(threshold, ls) for ls in unique}
        for ls in checked:
            self._label_groups(ls)  # raises for a label too long for the encoder
        thresholds = [checked[ls] for ls in label_sets]
        jobs = [job for i in range(len(texts)) for job in self._jobs(i, words[i], label_sets[i])]
        found: list[list[Candidates]] = [[] for _ in texts]
        for job, probs in self._run(jobs, batch_size, progress):
            th = thresholds[job.text][job.first_label : job.first_label + job.n_labels]
            cands = candidates(probs, job.n_words, th).shifted(words=job.word_start, labels=job.first_label)
            found[job.text].append(cands.select((cands.start >= job.core[0]) & (cands.start < job.core[1])))
        out = []
        for i, text in enumerate(texts):
            kept = greedy(Candidates.concat(found[i]), len(words[i]), flat=flat, multi_label=multi_label)
            out.append(_entities(text, words[i], label_sets[i], kept))
        return out

    def predict_entities(
        self,
        text: str,
        labels: Labels,
        flat_ner: bool = True,
        threshold: float = 0.5,
        multi_label: bool = False,
    ) -> list[dict]:
        """The ``gliner`` API: a list of dicts with start, end, text, label and score."""
        return [
            e.to_dict()
            for e in self.predict(text, labels, threshold=threshold, flat=flat_ner, multi_label=multi_label)
        ]

    def batch_predict_entities(
        self,
        texts: Sequence[str],
        labels: Labels | Sequence[Labels],
        flat_ner: bool = True,
        threshold: float = 0.5,
        multi_label: bool = False,
        batch_size: int = 8,
    ) -> list[list[dict]]:
        """The ``gliner`` API for many texts."""
        out = self.predict_batch(
            texts, labels, batch_size=batch_size, threshold=threshold, flat=flat_ner, multi_label=multi_label
        )
        return [[e.to_dict() for e in ents] for ents in out]

    # ------------------------------------------------------------------ steps

    def _label_sets(self, labels: Labels | Sequence[Labels], n_texts: int) -> list[LabelSet]:
        per_text = isinstance(labels, Sequence) and not isinstance(labels, str) and len(labels) > 0
        per_text = per_text and all(
            isinstance(x, (Sequence, Mapping)) and not isinstance(x, str) for x in labels
        )
        if per_text:
            if len(labels) != n_texts:
                raise ValueError(
                    f"got {len(labels)} label lists for {n_texts} texts; give one per text or one for all"
                )
            return [self._label_set(x) for x in labels]
        shared = self._label_set(labels)
        return [shared] * n_texts

    def _label_set(self, labels: Labels) -> LabelSet:
        if isinstance(labels, str):
            raise TypeError(
                f"labels must be a list of strings or a dict label -> description, not the string {labels!r}"
            )
        if isinstance(labels, Mapping):
            pairs = list(labels.items())
        elif isinstance(labels, Sequence):
            pairs = [(x, x) for x in labels]
        else:
            raise TypeError(
                f"labels must be a list of strings or a dict label -> description, got {type(labels).__name__}"
            )
        if not pairs:
            raise ValueError("labels is empty: give at least one label, e.g. ['person', 'organization']")
        names, prompts, seen = [], [], set()
        special = (self.config.ent_token, self.config.sep_token)
        for name, prompt in pairs:
            for what, value in (("label", name), ("description", prompt)):
                if not isinstance(value, str):
                    raise TypeError(f"each {what} must be a str, got {value!r}")
                if not value.strip():
                    raise ValueError(f"{what}s must not be empty or blank: {value!r}")
                for tok in special:
                    if tok in value:
                        raise ValueError(
                            f"{what} {value!r} contains the prompt token {tok!r}, which would break the prompt"
                        )
            if name in seen:
                continue  # duplicates collapse to the first, as in GLiNER
            seen.add(name)
            names.append(name)
            prompts.append(prompt)
        return LabelSet(tuple(names), tuple(prompts))

    def _label_groups(self, label_set: LabelSet) -> list[tuple[int, int]]:
        """:meth:`_split_labels`, cached per model for the last 64 label sets.

        A plain dict on the instance, keyed by the label set and the subword limit: a copy
        of the model (``copy.deepcopy``) gets its own cache, and a changed limit never reads
        groups computed for another.
        """
        key = (label_set, self.max_tokens)
        groups = self._group_cache.get(key)
        if groups is None:
            groups = self._split_labels(label_set)
            if len(self._group_cache) >= 64:
                self._group_cache.pop(next(iter(self._group_cache)))  # the oldest entry
            self._group_cache[key] = groups
        return groups

    def _split_labels(self, label_set: LabelSet) -> list[tuple[int, int]]:
        """Split a label set into (first, count) groups whose prompts fit half the subword budget."""
        budget = self.max_tokens // 2
        fixed = len(self.prompts.prefix) + len(self.prompts.suffix) + 1  # + <<SEP>>
        sizes = [
            len(p)
            for p in self.prompts.word_pieces(
                [x for pr in label_set.prompts for x in (self.config.ent_token, pr)]
            )
        ]
        cost = [sizes[2 * i] + sizes[2 * i + 1] for i in range(len(label_set.prompts))]
        room = self.max_tokens - fixed - 1  # a prompt of one label must leave a subword for the text
        for i, c in enumerate(cost):
            if c > room:
                name, prompt = label_set.names[i], label_set.prompts[i]
                short = repr(name) if len(name) <= 60 else repr(name[:57] + "...")
                what = f"label {short}" if prompt == name else f"the description of label {short}"
                raise ValueError(
                    f"{what} is {sizes[2 * i + 1]} subwords long, too long for the encoder's "
                    f"{self.max_tokens} subwords with the prompt and the text: shorten it to at most "
                    f"{room - sizes[2 * i]} subwords"
                )
        groups, first, used = [], 0, fixed
        for i, c in enumerate(cost):
            if i > first and used + c > budget:
                groups.append((first, i - first))
                first, used = i, fixed
            used += c
        groups.append((first, len(cost) - first))
        return groups

    def _jobs(self, text_id: int, words: list[Word], label_set: LabelSet) -> list[_Job]:
        if not words:
            return []
        pieces = self.prompts.word_pieces([w.text for w in words])
        jobs = []
        for first, count in self._label_groups(label_set):
            group = label_set.prompts[first : first + count]
            budget = self.max_tokens - self.prompts.prompt_length(group)
            capped = [
                p[: max(1, budget)] for p in pieces
            ]  # a single word longer than the budget keeps its head
            for a, b, core in plan_windows(
                [len(p) for p in capped], budget, self.config.max_len, self.window_overlap
            ):
                prompted = self.prompts.build(group, capped[a:b])
                jobs.append(_Job(text_id, first, count, a, b - a, core, prompted))
        return jobs

    def _run(self, jobs: list[_Job], batch_size: int, progress: bool):
        """Yield (job, probabilities (W, K, C) as numpy) in job order of length buckets."""
        order = sorted(range(len(jobs)), key=lambda j: len(jobs[j].prompted.input_ids))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="anyner", unit="batch")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for batch in batches:
                items = [jobs[j] for j in batch]
                tensors = collate([j.prompted for j in items], pad, self.device)
                logits = self.runner(**tensors)  # (B, W, K, C)
                if isinstance(logits, torch.Tensor):
                    probs = torch.sigmoid(logits.float()).cpu().numpy()
                else:  # numpy logits from another runtime
                    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
                for row, job in enumerate(items):
                    yield job, probs[row, : job.n_words, :, : job.n_labels]


def plan_windows(
    counts: list[int], budget: int, max_words: int, overlap: int
) -> list[tuple[int, int, tuple[int, int]]]:
    """Cut words with ``counts`` subwords each into windows of at most ``budget`` subwords.

    Returns (start, end, core) per window. Consecutive windows overlap by up to
    ``overlap`` words; the cores split the text at the middle of each overlap, so
    that every word belongs to exactly one core and a span starting in a core lies
    inside its window (when ``overlap >= 2 * max_width``).
    """
    n = len(counts)
    windows: list[tuple[int, int]] = []
    a = 0
    while True:
        b, used = a, 0
        while b < n and b - a < max_words and (used + counts[b] <= budget or b == a):
            used += counts[b]
            b += 1
        windows.append((a, b))
        if b >= n:
            break
        a = max(a + 1, b - min(overlap, (b - a) // 2))
    cuts = [0] + [(windows[i + 1][0] + windows[i][1]) // 2 for i in range(len(windows) - 1)] + [n]
    return [(a, b, (cuts[i], cuts[i + 1])) for i, (a, b) in enumerate(windows)]


def _thresholds(threshold: float | Mapping[str, float], label_set: LabelSet) -> np.ndarray:
    def check(value: Any, what: str) -> float:
        # numbers.Real takes numpy scalars too (np.float32 is no float); bools are refused.
        if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
        return float(value)

    if isinstance(threshold, Mapping):
        unknown = set(threshold) - set(label_set.names)
        if unknown:
            # sorted by repr: the keys may be of mixed types, which do not compare
            raise ValueError(f"threshold names labels that are not asked for: {sorted(unknown, key=repr)}")
        values = [check(threshold.get(n, 0.5), f"threshold[{n!r}]") for n in label_set.names]
    else:
        values = [check(threshold, "threshold")] * len(label_set.names)
    return np.asarray(values, dtype=np.float32)


def _entities(text: str, words: list[Word], label_set: LabelSet, kept: list[Candidate]) -> list[Entity]:
    out = []
    for c in kept:
        start, end = words[c.start].start, words[c.end - 1].end
        out.append(Entity(start, end, text[start:end], label_set.names[c.label], c.score))
    return out


def _max_tokens(tokenizer: Any, hf_config: Any) -> int:
    limits = [
        getattr(tokenizer, "model_max_length", None),
        getattr(hf_config, "max_position_embeddings", None),
    ]
    limits = [x for x in limits if isinstance(x, int) and 16 <= x < 100_000]
    return min(limits) if limits else 512


__all__ = ["AnyNER", "LabelSet", "plan_windows"]
