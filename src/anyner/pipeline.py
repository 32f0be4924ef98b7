"""``AnyNER``: the public prediction API. It chains the steps of the data path

    text -> words -> featurizer (label sets, groups, windows, batches) -> runner
         -> probabilities -> candidates -> greedy -> entities

and owns the device and the choice of runtime. Featurization lives in
``featurize.py``, the runtimes in ``runtime.py``, the variant-specific parts (config
translation, network, candidate decoding) in the registry ``model_types.py``,
decoding in ``decode.py``. Export (``export_onnx.py``) and training sit above this
module; nothing here imports them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from anyner import checkpoint, model_types, validate
from anyner.builtin import BUILTIN_NAME, builtin_model_path
from anyner.calibration import CALIBRATION_NAME, Calibration, is_auto, no_calibration_message
from anyner.config import AnyNERConfig
from anyner.decode import Candidate, Candidates, greedy
from anyner.featurize import Featurizer, Labels, LabelSet, plan_windows
from anyner.fileio import follow_umask
from anyner.label_vectors import LabelCache, LabelEmbeddings
from anyner.optional import OptionalModule, available
from anyner.runtime import (
    OnnxLabelEncoder,
    OnnxRunner,
    Runner,
    TorchLabelEncoder,
    TorchRunner,
    find_onnx_file,
    labels_onnx_file,
)
from anyner.tokenizer import encode_label_texts
from anyner.types import Entity, Relation, Word
from anyner.words import SUPPORTED_SPLITTERS, get_splitter, split_words

if TYPE_CHECKING:
    import torch
else:  # imported on first use: the light install runs ONNX exports without it
    torch = OptionalModule("torch", "the torch backend")

BACKENDS = ("auto", "torch", "onnx")
ENCODER_MODULES = ("auto", "transformers")
# An entity model's folder may carry a relation model here (the built-in model does): it answers
# predict_relations, loaded on first use, so the entity model's own predictions never change.
RELATIONS_DIR = "relations"
# Loading a folder's relation model: one at a time (a module-level lock, so that models stay
# copyable with copy.deepcopy).
_RELATION_LOAD = threading.Lock()

# A threshold: one number, a dict label -> number, or "auto" (the model's calibration.json)
Threshold = float | Mapping[str, float] | Literal["auto"]

# Settings the network is built from: a loaded model's config may change any other field.
_NETWORK_FIELDS = (
    "encoder_config", "hidden_size", "max_width", "span_mode", "num_rnn_layers", "ent_token", "sep_token",
    "class_token_index", "vocab_size", "embed_ent_token", "add_flert_token", "model_type",
)  # fmt: skip


class AnyNER:
    """Open-type named entity recognition with a GLiNER span model.

    Example:
        >>> model = AnyNER.from_pretrained()  # the built-in model, offline
        >>> model.predict("Bill Gates founded Microsoft.", ["person", "organization"])
        [Entity(start=0, end=10, text='Bill Gates', label='person', ...), ...]
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        tokenizer: Any,
        hf_config: Any,
        device: str | torch.device = "cpu",
        *,
        config: AnyNERConfig | None = None,
        runner: Runner | None = None,
        labels_tokenizer: Any = None,
        label_encoder: Any = None,
        calibration: Calibration | None = None,
    ):
        """Assemble a model from its parts; most users call :meth:`from_pretrained` instead.

        ``runner`` replaces the torch network for prediction (e.g. an
        :class:`~anyner.runtime.OnnxRunner`): any :class:`~anyner.runtime.Runner`.
        ``labels_tokenizer``: the label encoder's tokenizer (bi-encoder models only).
        ``label_encoder``: a bi-encoder's label subword ids and mask (L, T) -> vectors (L, D),
        e.g. an :class:`~anyner.runtime.OnnxLabelEncoder`; default the torch network's.
        ``calibration``: the thresholds of ``threshold="auto"`` (:attr:`calibration`).
        """
        if model is None and (runner is None or config is None):
            raise ValueError("give a torch model, or a runner and a config")
        self.model = model.to(device).eval() if model is not None else None
        # a runner without a torch network runs on the CPU; torch is not imported for it
        self.device = torch.device(device) if model is not None else _cpu_only(device)
        self.runner: Runner = runner if runner is not None else TorchRunner(self.model, self.device)
        self.tokenizer = tokenizer
        self.hf_config = hf_config
        cfg = config if config is not None else model.config
        self.model_type = model_types.get(cfg.model_type)
        self._candidates = self.model_type.part("candidates")
        self.featurizer = Featurizer(tokenizer, cfg, _max_tokens(tokenizer, hf_config))
        splitter = cfg.extra.get("words_splitter_type")
        # the checkpoint's own word splitter (ImportError naming the extra when its package is absent);
        # a name anyner does not know was warned about when the config was read
        self.split_words = get_splitter(splitter) if splitter in SUPPORTED_SPLITTERS else split_words
        self.labels_tokenizer = labels_tokenizer
        self.calibration = calibration
        # a folder's own relation model (RELATIONS_DIR), loaded on the first predict_relations call
        self.relation_folder: Path | None = None
        self._relation_model: AnyNER | None = None
        self._encoder_module = "auto"
        self.label_cache = LabelCache() if not self.model_type.labels_in_prompt else None
        self.label_encoder = label_encoder
        if self.label_cache is not None:
            if self.label_encoder is None and self.model is not None:
                self.label_encoder = TorchLabelEncoder(self.model, self.device)
            if labels_tokenizer is None or self.label_encoder is None:
                raise ValueError("a bi-encoder model needs its label tokenizer and a label encoder")

    @property
    def config(self) -> AnyNERConfig:
        """The model's settings (immutable). Assign ``dataclasses.replace(model.config, max_len=...)``
        to read texts in other windows; the settings the network was built from cannot change."""
        return self.featurizer.config

    @config.setter
    def config(self, value: AnyNERConfig) -> None:
        if not isinstance(value, AnyNERConfig):
            raise TypeError(f"config must be an AnyNERConfig, got {type(value).__name__}")
        changed = [f for f in _NETWORK_FIELDS if getattr(value, f) != getattr(self.config, f)]
        if changed:
            raise ValueError(f"{', '.join(changed)} describe the network and cannot change on a loaded model")
        self.featurizer = self.featurizer.with_limits(config=value)

    @property
    def calibration(self) -> Calibration | None:
        """The thresholds ``threshold="auto"`` uses (:class:`anyner.calibration.Calibration`), read from
        ``calibration.json`` in the model's folder by :meth:`from_pretrained`; None when it has none
        (then ``"auto"`` is a ValueError). Settable; :meth:`save_pretrained` writes it."""
        return self._calibration

    @calibration.setter
    def calibration(self, value: Calibration | None) -> None:
        if value is not None and not isinstance(value, Calibration):
            raise TypeError(f"calibration must be a Calibration or None, got {type(value).__name__}")
        self._calibration = value

    @property
    def span_prefilter(self) -> Any:
        """The span pre-filter (:class:`anyner.prefilter.SpanPrefilter`), or None (default): every
        span scored against every label. Set it to keep only each window's ``top_k`` spans by a
        label-independent score before the labels are scored (many labels; markerV0 span models
        on the torch backend)."""
        return getattr(getattr(self.model, "span", None), "prefilter", None)

    @span_prefilter.setter
    def span_prefilter(self, value: Any) -> None:
        from anyner.prefilter import SpanPrefilter, check_supported

        if value is not None:
            if not isinstance(value, SpanPrefilter):
                raise TypeError(f"span_prefilter must be a SpanPrefilter or None, got {type(value).__name__}")
            check_supported(self)
            width = self.model.span.out_project[3].weight.shape[1]
            if value.weight.shape != (width,):
                raise ValueError(
                    f"this span filter has {value.weight.shape[0]} weights, the model's span layer {width}: "
                    "it was trained for another model"
                )
        if self.model is not None and hasattr(self.model, "span"):
            self.model.span.prefilter = value

    @property
    def max_tokens(self) -> int:
        """Most subwords in one encoder sequence (the encoder's limit); settable to read shorter windows."""
        return self.featurizer.max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        self.featurizer = self.featurizer.with_limits(max_tokens=value)

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        device: str = "cpu",
        backend: str = "auto",
        onnx_file: str | None = None,
        encoder_module: str = "auto",
        threads: int | None = None,
    ) -> AnyNER:
        """Load a GLiNER span model from a local folder or a Hugging Face Hub id.

        Args:
            model: a folder holding ``gliner_config.json`` and weights, or a Hub id such
                as ``urchade/gliner_small-v2.1`` (fetched into the Hub cache). None (or
                ``"builtin"``) loads the built-in model shipped with anyner.
            revision: Hub revision (branch, tag or commit).
            cache_dir: Hub cache folder.
            device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
            backend: ``"torch"``; ``"onnx"`` to run a folder written by
                :func:`anyner.export_onnx.export_onnx` (``anyner export onnx``) with ONNX
                Runtime on the CPU, without torch or transformers; ``"auto"`` (default):
                torch where it is installed, else ONNX.
            onnx_file: with ``backend="onnx"``, the file to run: ``"model.onnx"`` (fp32) or
                ``"model_int8.onnx"`` (the int8 export); default the fp32 file if the folder
                has one, else the int8 file.
            encoder_module: with the torch backend, ``"auto"`` (default) runs a BERT-family
                encoder (the built-in model's MiniLM, BERT) through anyner's own BERT module,
                which gives transformers' outputs without importing its modelling code (a start
                about 3 s faster), where the folder holds ``tokenizer.json`` and the encoder's
                config; ``"transformers"`` always builds transformers' module (what training does).
            threads: CPU threads the model computes with: ONNX Runtime's intra-op threads, or
                ``torch.set_num_threads`` (for the whole process) on the torch backend. Default:
                ONNX Runtime uses the CPUs the process may run on, torch keeps its setting. Give
                ``cores // N`` to each of N processes sharing a machine.

        A ``calibration.json`` in the folder (see :mod:`anyner.calibration`) is read into
        :attr:`calibration`, for ``threshold="auto"``; an invalid one is a ValueError naming it.
        """
        if encoder_module not in ENCODER_MODULES:
            raise ValueError(
                f"encoder_module must be one of {', '.join(map(repr, ENCODER_MODULES))}, got {encoder_module!r}"
            )
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
        if backend == "auto":
            backend = "torch" if _torch_installed() else "onnx"
        if onnx_file is not None and backend != "onnx":
            raise ValueError("onnx_file is only used with backend='onnx'")
        if backend == "onnx":
            _cpu_only(device)
        elif threads is not None:
            import torch

            torch.set_num_threads(threads)
        if model is None or (str(model) == BUILTIN_NAME and not Path(BUILTIN_NAME).is_dir()):
            model = builtin_model_path()
        folder = checkpoint.resolve_folder(model, revision=revision, cache_dir=cache_dir)
        calibration = Calibration.find(folder)  # a bad calibration.json fails before the weights load
        loaded = cls._from_folder(folder, backend, device, onnx_file, encoder_module, threads)
        loaded.calibration = calibration
        companion = folder / RELATIONS_DIR
        if loaded.config.model_type != model_types.RELEX and (companion / checkpoint.CONFIG_NAME).is_file():
            loaded.relation_folder, loaded._encoder_module = companion, encoder_module
        return loaded

    @classmethod
    def _from_folder(
        cls,
        folder: Path,
        backend: str,
        device: str,
        onnx_file: str | None,
        encoder_module: str,
        threads: int | None,
    ) -> AnyNER:
        config = checkpoint.read_config(folder, check_encoder=False)
        light = (folder / "tokenizer.json").is_file() and config.encoder_config is not None
        uni = model_types.get(config.model_type).labels_in_prompt
        native = backend == "torch" and uni and light and encoder_module == "auto" and _bert_supports(config)
        if backend == "torch" and not native:
            checkpoint.check_encoder_config(folder, config)
        if not uni:
            if backend == "onnx":
                return cls._bi_encoder_onnx(folder, config, onnx_file, threads)
            return cls._bi_encoder(folder, config, device)
        # ONNX with tokenizers alone (the light install, and the fast start of the full one) when the
        # folder holds tokenizer.json and the encoder's config; else transformers reads them.
        if backend == "onnx" and (light or not _torch_installed()):
            from anyner.tokenizer import FastTokenizer

            tokenizer = FastTokenizer.from_folder(folder)
            config = _relation_token(tokenizer, checkpoint.add_prompt_tokens(tokenizer, config))
            runner = OnnxRunner(find_onnx_file(folder, onnx_file), threads, config=config)
            info = _EncoderInfo(config)
            return cls(None, tokenizer, info, device=device, config=config, runner=runner)
        if native:  # anyner's BERT module and the tokenizers library: no transformers import
            from anyner.model import bert
            from anyner.tokenizer import FastTokenizer

            tokenizer = FastTokenizer.from_folder(folder)
            config = _relation_token(tokenizer, checkpoint.add_prompt_tokens(tokenizer, config))
            bert_config = bert.BertConfig(config.encoder_config)
            bert_config.vocab_size = config.vocab_size
            net = checkpoint.build_and_load(
                lambda: model_types.build_network(config, bert_config), checkpoint.weights_file(folder)
            )
            return cls(net, tokenizer, bert_config, device=device)
        tokenizer = checkpoint.load_tokenizer(folder, config)
        config = _relation_token(tokenizer, checkpoint.add_prompt_tokens(tokenizer, config))
        hf_config = checkpoint.encoder_hf_config(config)
        hf_config.vocab_size = config.vocab_size
        if backend == "onnx":
            runner = OnnxRunner(find_onnx_file(folder, onnx_file), threads, config=config)
            return cls(None, tokenizer, hf_config, device=device, config=config, runner=runner)
        net = checkpoint.build_and_load(
            lambda: model_types.build_network(config, hf_config), checkpoint.weights_file(folder)
        )
        return cls(net, tokenizer, hf_config, device=device)

    @classmethod
    def _bi_encoder(cls, folder: Path, config: AnyNERConfig, device: str) -> AnyNER:
        # The text is read without a prompt: no prompt tokens are added, the vocabulary is the
        # encoder's (GLiNER leaves class_token_index and vocab_size at -1 for these models).
        tokenizer = checkpoint.load_tokenizer(folder, config)
        labels_tokenizer = checkpoint.load_labels_tokenizer(folder, config)
        hf_config = checkpoint.encoder_hf_config(config)
        net = checkpoint.build_and_load(
            lambda: model_types.build_network(config, hf_config), checkpoint.weights_file(folder)
        )
        return cls(net, tokenizer, hf_config, device=device, labels_tokenizer=labels_tokenizer)

    @classmethod
    def _bi_encoder_onnx(
        cls, folder: Path, config: AnyNERConfig, onnx_file: str | None, threads: int | None = None
    ) -> AnyNER:
        # Two graphs: the text graph (label vectors in) and the label graph beside it. The
        # tokenizers library reads both tokenizers where the folder has their tokenizer.json
        # (always, for an anyner export); else transformers does.
        text_graph = find_onnx_file(folder, onnx_file)
        runner = OnnxRunner(text_graph, threads, config=config)
        if not runner.reads_label_vectors:
            raise ValueError(f"{text_graph} does not read label vectors: it is not a bi-encoder's text graph")
        label_encoder = OnnxLabelEncoder(labels_onnx_file(text_graph), threads)
        sub = folder / checkpoint.LABELS_TOKENIZER_DIR
        light = (folder / "tokenizer.json").is_file() and (sub / "tokenizer.json").is_file()
        if light and config.encoder_config is not None:
            from anyner.tokenizer import FastTokenizer

            tokenizer, labels_tokenizer = FastTokenizer.from_folder(folder), FastTokenizer.from_folder(sub)
            info: Any = _EncoderInfo(config)
        elif _torch_installed():
            tokenizer = checkpoint.load_tokenizer(folder, config)
            labels_tokenizer = checkpoint.load_labels_tokenizer(folder, config)
            info = checkpoint.encoder_hf_config(config)
        else:
            raise FileNotFoundError(
                f"{folder} lacks tokenizer.json (or {checkpoint.LABELS_TOKENIZER_DIR}/tokenizer.json) or "
                "encoder_config: without transformers anyner reads only those (pip install 'anyner[torch]')"
            )
        return cls(
            None, tokenizer, info, config=config, runner=runner,
            labels_tokenizer=labels_tokenizer, label_encoder=label_encoder,
        )  # fmt: skip

    @classmethod
    def from_encoder(
        cls, encoder: str | Path, device: str = "cpu", *, config: AnyNERConfig | None = None, **fields: Any
    ) -> AnyNER:
        """A new model: a pretrained Hugging Face encoder and a randomly initialised head.

        Args:
            encoder: Hub id or local folder of the encoder.
            config: the head's settings (default :class:`AnyNERConfig`'s); its ``encoder`` is replaced.
            **fields: :class:`AnyNERConfig` fields (``hidden_size``, ``span_mode``, ...) on top of ``config``.
        """
        base = config if config is not None else AnyNERConfig()
        cfg = dataclasses.replace(base, encoder=str(encoder), **fields)
        hf_config = checkpoint.encoder_hf_config(cfg)  # the encoder's own vocabulary, to load its weights
        tokenizer = checkpoint.load_tokenizer(None, cfg)
        if not model_types.get(cfg.model_type).labels_in_prompt:  # a bi-encoder: no prompt, no new tokens
            if cfg.labels_encoder_config is None:
                cfg = dataclasses.replace(
                    cfg, labels_encoder_config=_config_dict(checkpoint.labels_hf_config(cfg))
                )
            net = model_types.build_network(cfg, hf_config, pretrained_encoder=True)
            labels_tokenizer = checkpoint.load_labels_tokenizer(None, cfg)
            return cls(net, tokenizer, hf_config, device=device, labels_tokenizer=labels_tokenizer)
        cfg = _relation_token(tokenizer, checkpoint.add_prompt_tokens(tokenizer, cfg))
        net = model_types.build_network(cfg, hf_config, pretrained_encoder=True)
        net.encoder.resize_vocab(cfg.vocab_size)
        hf_config.vocab_size = cfg.vocab_size
        return cls(net, tokenizer, hf_config, device=device)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``model.safetensors``, ``gliner_config.json`` and the tokenizer to ``folder``.

        The folder loads in anyner and in the ``gliner`` package. A model with a
        :attr:`calibration` also gets its ``calibration.json``.
        """
        import json

        if self.model is None:
            raise ValueError("this model runs on another backend and has no torch weights to save")
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.config.vocab_size != -1:
            self.hf_config.vocab_size = self.config.vocab_size
        weights = folder / checkpoint.SAFETENSORS_NAME
        save_file(checkpoint.gliner_state_dict(self.model), str(weights))
        follow_umask(weights)  # safetensors writes 0600; the other files follow the umask
        gliner_config = checkpoint.config_to_gliner(self.config, self.hf_config)
        (folder / checkpoint.CONFIG_NAME).write_text(
            json.dumps(gliner_config, indent=2) + "\n", encoding="utf-8"
        )
        self.tokenizer.save_pretrained(str(folder))
        if self.labels_tokenizer is not None:
            self.labels_tokenizer.save_pretrained(str(folder / checkpoint.LABELS_TOKENIZER_DIR))
        if self.calibration is not None:
            self.calibration.save(folder / CALIBRATION_NAME)
        return folder

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool = False,
        commit_message: str | None = None,
        revision: str | None = None,
        model_card: str | None = None,
    ) -> str:
        """Upload the model to the Hugging Face Hub as ``repo_id`` (created if it does not exist).

        The upload is the folder :meth:`save_pretrained` writes (config, weights, tokenizer) and
        a model card (``README.md``); it loads with ``AnyNER.from_pretrained(repo_id)`` and in
        the ``gliner`` package.

        Args:
            repo_id: ``"owner/name"`` (or ``"name"`` under the token's own account).
            token: a Hub token with write access; default ``HF_TOKEN`` or the one stored by
                ``huggingface-cli login``.
            private: create the repository private (an existing one keeps its visibility).
            commit_message: the commit's message.
            revision: the branch to commit to (created if needed); default the main branch.
            model_card: the Markdown of ``README.md`` (your figures, data, license); default a
                card with Hub metadata, how to load the model and its settings.

        Returns:
            The URL of the commit.

        Raises:
            ValueError: ``repo_id`` is not a repository id, or the model has no torch weights.
            anyner.hub.HubError: offline, no token or a refused one, no network.
        """
        import tempfile

        from anyner import __version__, hub

        hub.check_repo_id(repo_id)
        if self.model is None:
            raise ValueError("this model runs on another backend and has no torch weights to push")
        hub.check_online(repo_id)  # before the weights are written: offline, nothing can be uploaded
        with tempfile.TemporaryDirectory(prefix="anyner-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            card = folder / hub.CARD_NAME
            text = model_card if model_card is not None else hub.model_card(repo_id, self.config, __version__)
            card.write_text(text, encoding="utf-8")
            return hub.push_folder(
                folder,
                repo_id,
                token=token,
                private=private,
                commit_message=commit_message,
                revision=revision,
            )

    # ------------------------------------------------------------------ prediction

    def predict(
        self,
        text: str,
        labels: Labels,
        threshold: Threshold = 0.5,
        flat: bool = True,
        multi_label: bool = False,
    ) -> list[Entity]:
        """Find entities of the given labels in one text.

        Args:
            text: any string; long texts are read in overlapping windows.
            labels: label names, or a dict label -> description (the model reads the
                description, the entity carries the label).
            threshold: minimum score, or a dict label -> threshold (others use 0.5), or ``"auto"``:
                each label's threshold from the model's :attr:`calibration` (``calibration.json``
                in its folder, fitted by ``anyner calibrate``; see :mod:`anyner.calibration`).
            flat: no overlapping entities (True) or nested ones allowed (False).
            multi_label: let one span carry several labels.

        Returns:
            Entities sorted by start, with character offsets: ``text[e.start:e.end] == e.text``.

        Raises:
            ValueError: a bad label or threshold; ``threshold="auto"`` on a model without calibration.
        """
        return self.predict_batch([text], labels, threshold=threshold, flat=flat, multi_label=multi_label)[0]

    def predict_batch(
        self,
        texts: Sequence[str],
        labels: Labels | Sequence[Labels],
        batch_size: int = 8,
        threshold: Threshold = 0.5,
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
        words = [self.split_words(t) for t in texts]
        return self._predict(texts, words, labels, batch_size, threshold, flat, multi_label, progress)

    def predict_words(
        self,
        words: Sequence[Sequence[str]],
        labels: Labels | Sequence[Labels],
        batch_size: int = 8,
        threshold: Threshold = 0.5,
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
            texts.append(" ".join(ws))
            split.append(joined_words(ws))
        return self._predict(texts, split, labels, batch_size, threshold, flat, multi_label, progress)

    def _predict(
        self, texts, words, labels, batch_size, threshold, flat, multi_label, progress
    ) -> list[list[Entity]]:
        label_sets, found = self.find_candidates(texts, words, labels, batch_size, threshold, progress)
        out = []
        for i, text in enumerate(texts):
            kept = greedy(found[i], len(words[i]), flat=flat, multi_label=multi_label)
            out.append(entities_of(text, words[i], label_sets[i], kept))
        return out

    def resolve_threshold(self, threshold: Any, label_set: LabelSet) -> Any:
        """``threshold`` as the featurizer takes it: ``"auto"`` becomes the calibration's dict."""
        if not is_auto(threshold):
            return threshold
        if self.calibration is None:
            raise ValueError(no_calibration_message())
        return self.calibration.thresholds(label_set.names)

    def find_candidates(
        self, texts, words, labels, batch_size, threshold, progress
    ) -> tuple[list[LabelSet], list[Candidates]]:
        """Each text's label set and every candidate (span, label, score) above its label's
        threshold, before the greedy choice (what :func:`anyner.calibrate.score_dev_set` keeps)."""
        validate.positive_int(batch_size, "batch_size")
        featurizer = self.featurizer
        given = labels if isinstance(labels, LabelEmbeddings) else None
        if given is not None:
            self._check_embeddings(given)
            labels = dict(zip(given.names, given.prompts, strict=True))
        label_sets = featurizer.label_sets(labels, len(texts))
        # Every argument is checked even when there is no text (or no word) to run on.
        unique = dict.fromkeys(label_sets or [featurizer.label_set(labels)])
        checked = {ls: featurizer.thresholds(self.resolve_threshold(threshold, ls), ls) for ls in unique}
        for ls in checked:
            featurizer.label_groups(ls)  # raises for a label too long for the encoder
        thresholds = [checked[ls] for ls in label_sets]
        jobs = [job for i in range(len(texts)) for job in featurizer.jobs(i, words[i], label_sets[i])]
        chunks = featurizer.batch_order(jobs, batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="anyner", unit="batch")
        vectors = {}
        if self.label_cache is not None:  # bi-encoder: the label vectors of each label set, once
            for ls in checked:
                vectors[ls] = given.vectors if given is not None else self._label_vectors(ls.prompts)
        found: list[list[Candidates]] = [[] for _ in texts]
        for chunk in chunks:
            batch = featurizer.collate(
                chunk, [vectors[label_sets[job.text]] for job in chunk] if vectors else None
            )
            probs = self.runner(batch)  # (B, W, K, C)
            for row, job in enumerate(chunk):
                th = thresholds[job.text][job.first_label : job.first_label + job.n_labels]
                p = probs[row, : job.n_words, :, : job.n_labels]
                cands = self._candidates(p, job.n_words, th).shifted(
                    words=job.word_start, labels=job.first_label
                )
                found[job.text].append(
                    cands.select((cands.start >= job.core[0]) & (cands.start < job.core[1]))
                )
        return label_sets, [Candidates.concat(f) for f in found]

    # ------------------------------------------------------------------ bi-encoder labels

    def encode_labels(self, labels: Labels) -> LabelEmbeddings:
        """A bi-encoder's vectors for a label set, to pass as ``labels`` to any predict method
        (the label encoder then does not run) or to save with :meth:`LabelEmbeddings.save`.

        Raises:
            NotImplementedError: the model reads its labels in the prompt (a uni-encoder).
        """
        if self.label_cache is None:
            raise NotImplementedError(
                f"encode_labels needs a bi-encoder model; this one ({self.config.model_type}) reads its labels "
                "together with the text, so they cannot be encoded apart"
            )
        ls = self.featurizer.label_set(labels)
        return LabelEmbeddings(ls.names, ls.prompts, self._label_vectors(ls.prompts), self._fingerprint())

    def clear_label_cache(self) -> None:
        """Forget every label vector computed so far (a bi-encoder's caches); nothing for a uni-encoder."""
        if self.label_cache is not None:
            self.label_cache.clear()
        forget = getattr(self.model, "forget_labels", None)
        if forget is not None:
            forget()

    def _label_vectors(self, prompts: Sequence[str]) -> np.ndarray:
        return self.label_cache.vectors(list(prompts), self._encode_label_texts)

    def _encode_label_texts(self, texts: list[str], chunk: int = 128) -> np.ndarray:
        out = np.zeros((len(texts), self.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        for a in range(0, len(order), chunk):
            rows = order[a : a + chunk]
            ids, mask = encode_label_texts(self.labels_tokenizer, [texts[i] for i in rows])
            out[rows] = self.label_encoder(ids, mask)
        return out

    def _fingerprint(self) -> str:
        cfg = self.config
        return f"{cfg.name}:{cfg.labels_encoder}:{cfg.hidden_size}"

    def _check_embeddings(self, given: LabelEmbeddings) -> None:
        if self.label_cache is None:
            raise NotImplementedError("label vectors (LabelEmbeddings) need a bi-encoder model")
        if given.vectors.shape[1] != self.config.hidden_size:
            raise ValueError(
                f"these label vectors have width {given.vectors.shape[1]}, the model {self.config.hidden_size}: "
                "they come from another model"
            )
        if given.model != self._fingerprint():
            raise ValueError(f"these label vectors were made by model {given.model!r}, not by this one")

    def predict_entities(
        self,
        text: str,
        labels: Labels,
        flat_ner: bool = True,
        threshold: Threshold = 0.5,
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
        threshold: Threshold = 0.5,
        multi_label: bool = False,
        batch_size: int = 8,
    ) -> list[list[dict]]:
        """The ``gliner`` API for many texts."""
        out = self.predict_batch(
            texts, labels, batch_size=batch_size, threshold=threshold, flat=flat_ner, multi_label=multi_label
        )
        return [[e.to_dict() for e in ents] for ents in out]

    # ------------------------------------------------------------------ relation extraction

    @property
    def extracts_relations(self) -> bool:
        """Whether :meth:`predict_relations` works: a relation-extraction model, or an entity model
        whose folder carries one in ``relations/`` (the built-in model does), on the torch backend."""
        relex = self.config.model_type == model_types.RELEX or self.relation_folder is not None
        return relex and self.model is not None

    def relation_model(self) -> AnyNER:
        """The model that answers :meth:`predict_relations`: this one, or the relation model of
        this model's folder (``relations/``), loaded on the first call and kept.

        Raises:
            NotImplementedError: the folder's relation model needs the torch backend.
            CheckpointError: its files are damaged or do not belong to this model.
        """
        if self.relation_folder is None or self.config.model_type == model_types.RELEX:
            return self
        if self.model is None:
            raise NotImplementedError(
                f"this model's relations ({self.relation_folder}) run on the torch backend only: install "
                "torch (pip install 'anyner[torch]') and load the model with backend='torch'"
            )
        with _RELATION_LOAD:
            if self._relation_model is None:
                self._relation_model = AnyNER.from_pretrained(
                    self.relation_folder, device=str(self.device), backend="torch",
                    encoder_module=self._encoder_module,
                )  # fmt: skip
        return self._relation_model

    def predict_relations(
        self,
        text: str,
        labels: Labels,
        relations: Sequence[str] | Mapping[str, str],
        threshold: Threshold = 0.5,
        relation_threshold: float | None = None,
        flat: bool = True,
        multi_label: bool = False,
        adjacency_threshold: float | None = None,
    ) -> tuple[list[Entity], list[Relation]]:
        """Find entities and the relations between them in one text (relation-extraction models:
        GLiNER checkpoints with ``relations_layer``, and the built-in model, whose relation model
        loads on the first call; torch backend).

        Args:
            text: any string; long texts are read in overlapping windows.
            labels: entity label names, or a dict label -> description.
            relations: relation names, or a dict relation -> description (the model reads the
                description, the relation carries the name). Names must differ from the labels.
            threshold: minimum entity score, or a dict label -> threshold (others use 0.5), or
                ``"auto"``: the model's calibrated entity thresholds (see :meth:`predict`).
            relation_threshold: minimum relation score; default ``threshold`` (0.5 when that is a
                dict or ``"auto"``).
            flat: no overlapping entities (True) or nested ones allowed (False).
            multi_label: let one span carry several labels.
            adjacency_threshold: the pair filter of the model's adjacency layer (not used with
                ``relations_layer="none"``); default ``threshold`` (0.5 when that is a dict or ``"auto"``).

        Returns:
            ``(entities, relations)``: entities as :meth:`predict` gives them, and
            :class:`~anyner.types.Relation` objects whose head and tail are among those entities.

        Raises:
            ValueError: no relations, a relation named as a label, or more labels and relations
                than fit one prompt.
            NotImplementedError: the model is not a relation-extraction model, or not on torch.
        """
        return self.batch_predict_relations(
            [text], labels, relations, threshold=threshold, relation_threshold=relation_threshold,
            flat=flat, multi_label=multi_label, adjacency_threshold=adjacency_threshold,
        )[0]  # fmt: skip

    def batch_predict_relations(
        self,
        texts: Sequence[str],
        labels: Labels | Sequence[Labels],
        relations: Sequence[str] | Mapping[str, str] | Sequence[Sequence[str] | Mapping[str, str]],
        batch_size: int = 8,
        threshold: Threshold = 0.5,
        relation_threshold: float | None = None,
        flat: bool = True,
        multi_label: bool = False,
        adjacency_threshold: float | None = None,
    ) -> list[tuple[list[Entity], list[Relation]]]:
        """:meth:`predict_relations` for many texts: one ``(entities, relations)`` per text;
        ``labels`` and ``relations`` are one set for all texts or one per text."""
        from anyner.relations import predict_relations

        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; use predict_relations() for one text")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        model = self.relation_model()
        if model is not self and is_auto(threshold) and model.calibration is None:
            raise ValueError(
                f"threshold='auto' has no calibration for this model's relation model ({self.relation_folder}): "
                "its calibration.json serves predict only; pass a number instead, e.g. 0.5"
            )
        words = [model.split_words(t) for t in texts]
        return predict_relations(
            model, texts, words, labels, relations, batch_size, threshold, relation_threshold,
            adjacency_threshold, flat, multi_label,
        )  # fmt: skip

    def predict_relation_dicts(
        self,
        text: str,
        labels: Labels,
        relations: Sequence[str],
        flat_ner: bool = True,
        threshold: Threshold = 0.5,
        adjacency_threshold: float | None = None,
        relation_threshold: float | None = None,
        multi_label: bool = False,
    ) -> tuple[list[dict], list[dict]]:
        """The ``gliner`` relex API (its ``predict_relations``): entity dicts (start, end, text,
        label, score) and relation dicts (head, tail, relation, score)."""
        ents, rels = self.batch_predict_relation_dicts(
            [text], labels, relations, flat_ner=flat_ner, threshold=threshold,
            adjacency_threshold=adjacency_threshold, relation_threshold=relation_threshold,
            multi_label=multi_label,
        )  # fmt: skip
        return ents[0], rels[0]

    def batch_predict_relation_dicts(
        self,
        texts: Sequence[str],
        labels: Labels | Sequence[Labels],
        relations: Sequence[str] | Sequence[Sequence[str]],
        flat_ner: bool = True,
        threshold: Threshold = 0.5,
        adjacency_threshold: float | None = None,
        relation_threshold: float | None = None,
        multi_label: bool = False,
        batch_size: int = 8,
    ) -> tuple[list[list[dict]], list[list[dict]]]:
        """The ``gliner`` relex API for many texts (its ``inference(texts, labels, relations)``):
        ``(entity dicts per text, relation dicts per text)``."""
        out = self.batch_predict_relations(
            texts, labels, relations, batch_size=batch_size, threshold=threshold,
            relation_threshold=relation_threshold, flat=flat_ner, multi_label=multi_label,
            adjacency_threshold=adjacency_threshold,
        )  # fmt: skip
        return [[e.to_dict() for e in ents] for ents, _ in out], [
            [r.to_dict() for r in rels] for _, rels in out
        ]


def _relation_token(tokenizer: Any, config: AnyNERConfig) -> AnyNERConfig:
    """A relation-extraction model's config with its ``<<REL>>`` token known to the tokenizer."""
    if config.model_type != model_types.RELEX:
        return config
    return checkpoint.add_relation_token(tokenizer, config)


def joined_words(words: Sequence[str]) -> list[Word]:
    """The words of ``" ".join(words)`` with their character offsets in it."""
    pos, row = 0, []
    for w in words:
        row.append(Word(w, pos, pos + len(w)))
        pos += len(w) + 1
    return row


def entities_of(text: str, words: list[Word], label_set: LabelSet, kept: list[Candidate]) -> list[Entity]:
    out = []
    for c in kept:
        start, end = words[c.start].start, words[c.end - 1].end
        out.append(Entity(start, end, text[start:end], label_set.names[c.label], c.score))
    return out


def _torch_installed() -> bool:
    return available("torch") and available("transformers")


def _bert_supports(config: AnyNERConfig) -> bool:
    from anyner.model import bert

    return bert.supports(config.encoder_config)


def _cpu_only(device: Any) -> str:
    kind = getattr(device, "type", str(device)).split(":")[0]
    if kind != "cpu":
        raise ValueError(f"the onnx backend runs on the CPU, not on {device!r}")
    return "cpu"


class _EncoderInfo:
    """What the pipeline reads of the encoder's config without transformers: its position limit."""

    def __init__(self, config: AnyNERConfig):
        values = config.encoder_config or {}
        self.max_position_embeddings = values.get("max_position_embeddings")
        self.vocab_size = config.vocab_size
        self.model_type = values.get("model_type")


def _config_dict(hf_config: Any) -> dict[str, Any]:
    values = hf_config.to_dict()
    values["model_type"] = hf_config.model_type
    return values


def _max_tokens(tokenizer: Any, hf_config: Any) -> int:
    limits = [
        getattr(tokenizer, "model_max_length", None),
        getattr(hf_config, "max_position_embeddings", None),
    ]
    limits = [x for x in limits if isinstance(x, int) and 16 <= x < 100_000]
    return min(limits) if limits else 512


__all__ = ["AnyNER", "Labels", "LabelSet", "plan_windows"]  # the last two re-exported from featurize
