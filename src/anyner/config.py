"""The one typed model configuration, validated when it is made and immutable after.

``checkpoint.py`` translates a GLiNER ``gliner_config.json`` into this class and
back; nothing else reads GLiNER's field names. The training config's ``[model]``
table is read into this class too, so that model settings have one home. A change
makes a new, validated object: ``dataclasses.replace(config, max_len=256)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from anyner.validate import non_negative_int, positive_int

SPAN_MODES = ("markerV0", "marker")  # span models; token-level ones have span_mode "token_level"


@dataclass(frozen=True)
class AnyNERConfig:
    """Configuration of a GLiNER span model (uni-encoder).

    Attributes:
        encoder: Hugging Face id or local folder of the encoder (GLiNER's ``model_name``).
        encoder_config: the encoder's own config as a dict (``model_type`` included),
            or None to read it from ``encoder`` when the model is built.
        hidden_size: width D of word, span and label vectors.
        max_width: K, the longest span in words.
        span_mode: ``markerV0`` (v1/v2/v2.1/v2.5 checkpoints) or ``marker`` (v0, NuNER_Zero-span);
            ``token_level`` for token-level models (NuNER_Zero, gliner_token): no span width limit.
        num_rnn_layers: BiLSTM layers over the words; 0 means none.
        dropout: dropout of the head's MLPs (training only).
        ent_token / sep_token: the prompt's special tokens.
        class_token_index: tokenizer id of ``ent_token``; -1 until the tokens are added.
        vocab_size: encoder vocabulary size after adding the tokens; -1 until then.
        max_len: most words the model reads at once; longer texts are windowed.
        max_types: most labels in one prompt during training.
        embed_ent_token: label vector at ``<<ENT>>`` (True) or at the token after it.
        add_flert_token: whether ``[FLERT]`` is added to the tokenizer before the
            prompt tokens (GLiNER adds it, so ids match public checkpoints).
        model_type: the row of :data:`anyner.model_types.MODEL_TYPES` that runs this model.
        labels_encoder: bi-encoder models: Hugging Face id or folder of the encoder that reads
            the labels (GLiNER's ``labels_encoder``); None for uni-encoder models.
        labels_encoder_config: its transformers config as a dict, or None to read it from
            ``labels_encoder``.
        name: free-form name of the model.
        extra: fields of the source config that do not change the network
            (training settings), kept so a re-save loses nothing.
    """

    encoder: str = "microsoft/deberta-v3-small"
    encoder_config: dict[str, Any] | None = None
    hidden_size: int = 512
    max_width: int = 12
    span_mode: str = "markerV0"
    num_rnn_layers: int = 1
    dropout: float = 0.4
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    class_token_index: int = -1
    vocab_size: int = -1
    max_len: int = 384
    max_types: int = 25
    embed_ent_token: bool = True
    add_flert_token: bool = True
    model_type: str = "uni_encoder_span"
    labels_encoder: str | None = None
    labels_encoder_config: dict[str, Any] | None = None
    name: str = "anyner"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from anyner.model_types import MODEL_TYPES

        if self.model_type not in MODEL_TYPES:
            raise NotImplementedError(
                f"model_type={self.model_type!r} is not supported; anyner implements {', '.join(MODEL_TYPES)}"
            )
        row = MODEL_TYPES[self.model_type]
        if row.labels_in_prompt == (self.labels_encoder is not None):
            raise ValueError(
                f"model_type={self.model_type!r} "
                + ("reads labels in the prompt: labels_encoder must be None" if row.labels_in_prompt
                   else "needs labels_encoder (the encoder that reads the labels)")
            )  # fmt: skip
        modes = row.span_modes
        if self.span_mode not in modes:
            raise NotImplementedError(
                f"span_mode={self.span_mode!r} is not supported for model_type={self.model_type!r}; "
                f"it takes {' or '.join(modes)}"
            )
        for name in ("hidden_size", "max_width", "max_len", "max_types"):
            positive_int(getattr(self, name), name)
        non_negative_int(self.num_rnn_layers, "num_rnn_layers")
        if self.num_rnn_layers and self.hidden_size % 2:
            raise ValueError(f"hidden_size must be even with a BiLSTM, got {self.hidden_size}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, int | float)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.ent_token or not self.sep_token or self.ent_token == self.sep_token:
            raise ValueError(
                f"ent_token and sep_token must be distinct, non-empty: {self.ent_token!r}, {self.sep_token!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
