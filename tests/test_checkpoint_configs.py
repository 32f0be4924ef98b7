"""Every public GLiNER checkpoint config in ``shared/checkpoint-configs`` against anyner's loader.

The requirement: every config that describes a span or token-level model loads with
random weights of the shapes it implies; the others fail with a clear message (another
variant: NotImplementedError naming the field and value; not JSON: CheckpointError naming
the file). Each file in the folder is its own test id.

How this runs offline and fast enough:

* The backbones (``microsoft/deberta-v3-{small,base,large}``, ``microsoft/mdeberta-v3-base``)
  are put in a fake Hugging Face cache (``models--<owner>--<name>/refs/main`` +
  ``snapshots/<hash>/``) so that ``AutoConfig``/``AutoTokenizer.from_pretrained(<hub id>)``
  resolve exactly as for a user who has the backbone cached. Each holds a DeBERTa-v2
  config with the real hidden size and vocabulary (128100 rows, 251000 for mdeberta) but
  ONE layer and a small intermediate size: the GLiNER head's shapes depend on the hidden
  size and the vocabulary, not on depth. The tokenizer is synthetic (WordPiece built with
  ``tokenizers``) with the real base length (128001: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3,
  [MASK] 128000; mdeberta 250102), so adding [FLERT], <<ENT>>, <<SEP>> yields the ids the
  configs and the published ``added_tokens*.json`` files record (checked below).
* Key names and shapes of the weights come from the reference ``gliner`` package: it
  builds each config's model on the meta device (its own ``low_cpu_mem_usage`` path,
  tokenizer handling included) and its state dict is serialized as its
  ``save_pretrained(safe_serialization=True)`` does; only the values are drawn here, from
  a seeded generator (random heads whose scores fall on both sides of 0.5). Configs whose
  reference shapes are identical share one file (hard links).
* anyner loads under ``transformers``' ``no_init_weights``: the random init of a 128k x 1024
  embedding costs seconds and is overwritten by the checkpoint anyway. Every parameter is
  then compared with the file, so nothing left uninitialised or mis-mapped could pass.
* Where the reference can load the same folder, both must find the same entities (scores
  within 1e-4) on three sentences at threshold 0.5.
"""

from __future__ import annotations

import copy
import itertools
import json
import shutil
import string
import warnings
import zlib
from pathlib import Path

import pytest
import torch

from anyner import AnyNER, checkpoint
from anyner.checkpoint import CheckpointError
from anyner.model.span import Marker, MarkerV0
from anyner.model.token import TokenScorer
from tests.conftest import shared_dir

# Marked slow: every test that uses the fake Hub (one model per public config, with full-size
# embeddings); the coverage check of the folder runs in the fast subset.


def _reference():
    """The reference package's model module (a test-only peer); skips the test without it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its import calls torch.jit.script
        return pytest.importorskip("gliner.model", reason="the reference gliner package is not installed")


_SHARED = shared_dir()
CONFIG_DIR = _SHARED / "checkpoint-configs" if _SHARED is not None else None
ABSENT = f"{CONFIG_DIR or '../shared/checkpoint-configs'} is absent (set ANYNER_SHARED to the shared folder)"

# Real geometry of each backbone: hidden size, attention heads, rows in the HF config's
# embedding (vocab_size), and the tokenizer's length before GLiNER adds its tokens.
BACKBONES = {
    "microsoft/deberta-v3-small": (768, 12, 128100, 128001),
    "microsoft/deberta-v3-base": (768, 12, 128100, 128001),
    "microsoft/deberta-v3-large": (1024, 16, 128100, 128001),
    "microsoft/mdeberta-v3-base": (768, 12, 251000, 250102),
}
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
FLERT = "[FLERT]"
SPAN_MODES = ("marker", "markerV0")
TOKEN_MODE = "token_level"
VARIANT_FIELDS = ("labels_encoder", "labels_decoder", "decoder_mode", "relations_layer")
HEAD_GAIN = 1.0  # spread of the random head's weights: scores land on both sides of 0.5
EMBEDDING_PERIOD = 8191  # distinct random rows; the embedding table repeats them (see _random_value)

SENTENCES = [
    "Bill Gates founded Microsoft in Albuquerque in April 1975.",
    "Angela Merkel met Emmanuel Macron in Paris on Monday to discuss the euro.",
    "The Amazon river flows through Brazil, and Apple opened a store in São Paulo.",
]
LABELS = ["person", "organization", "location", "date"]
SCORE_TOL = 1e-4

# Files whose expected outcome differs from the requirement because of a known loader gap.
KNOWN_GAPS: dict[str, str] = {}  # config files anyner is known not to load, with the reason


# ---------------------------------------------------------------------------- the files


def _kind(path: Path) -> str:
    """'span', 'token', 'variant' or 'unreadable', decided here independently of anyner."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "unreadable"
    if not isinstance(raw, dict):
        return "unreadable"
    if _variant_field(raw):
        return "variant"
    return "token" if raw.get("span_mode") == TOKEN_MODE else "span"


def _variant_field(raw: dict) -> tuple[str, object] | None:
    """The field that makes a config a GLiNER variant anyner does not run, with its value; None for
    a span or token-level model."""
    span_mode = raw.get("span_mode", "markerV0")
    if span_mode not in (*SPAN_MODES, TOKEN_MODE):
        return "span_mode", span_mode
    for key in VARIANT_FIELDS:
        if raw.get(key):
            return key, raw[key]
    return None


def _config_files() -> list[Path]:
    if CONFIG_DIR is None or not CONFIG_DIR.is_dir():
        return []
    return sorted(CONFIG_DIR.glob("*/gliner_config*"))


def _file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _span_order(path: Path) -> tuple:
    """Configs likely to share weight shapes run one after another (the weights cache holds one file)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return (raw.get("model_name", ""), raw.get("hidden_size", 512), raw.get("span_mode", "markerV0"),
            raw.get("vocab_size", -1), _file_id(path))  # fmt: skip


def _params(*kinds: str) -> list:
    files = [p for p in _config_files() if _kind(p) in kinds]
    if "span" in kinds:
        files.sort(key=_span_order)
    if not files:
        reason = ABSENT if not _config_files() else f"no config in {CONFIG_DIR} is of kind {'/'.join(kinds)}"
        return [pytest.param(None, id=f"no-{'-'.join(kinds)}-config", marks=pytest.mark.skip(reason=reason))]
    params = []
    for p in files:
        gap = KNOWN_GAPS.get(_file_id(p))
        marks = [pytest.mark.xfail(strict=True, raises=NotImplementedError, reason=gap)] if gap else []
        params.append(pytest.param(p, id=_file_id(p), marks=marks))
    return params


def _added_tokens_params() -> list:
    if CONFIG_DIR is None or not CONFIG_DIR.is_dir():
        return [pytest.param(None, id="checkpoint-configs-absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(p, id=_file_id(p)) for p in sorted(CONFIG_DIR.glob("*/added_tokens*.json"))]


# ---------------------------------------------------------------------------- fake backbones


def _pieces(n: int) -> list[str]:
    """n distinct WordPiece entries: the four DeBERTa specials, characters, some words, filler."""
    out = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    seen = set(out)

    def add(piece: str) -> None:
        if piece not in seen and len(out) < n:
            seen.add(piece)
            out.append(piece)

    chars = string.ascii_letters + string.digits + string.punctuation + "àáâãçéèêíñóôõöúüß"
    for c in chars:
        add(c)
    for c in chars:
        add("##" + c)
    for a, b in itertools.product(string.ascii_lowercase, repeat=2):
        add(a + b)
        add("##" + a + b)
    for word in " ".join(SENTENCES + LABELS).lower().replace(".", " ").replace(",", " ").split():
        add(word)
    i = 0
    while len(out) < n:
        add(f"piece{i}")
        i += 1
    return out


def _tokenizer(base_len: int):
    """A fast tokenizer of exactly ``base_len`` tokens, [MASK] last, [CLS] ... [SEP] around a text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {p: i for i, p in enumerate([*_pieces(base_len - 1), "[MASK]"])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )
    assert len(fast) == base_len and fast.mask_token_id == base_len - 1
    return fast


def _write_backbone(cache: Path, name: str, tokenizer) -> None:
    from transformers import DebertaV2Config

    hidden, heads, vocab, _ = BACKBONES[name]
    repo = cache / ("models--" + name.replace("/", "--"))
    snapshot = repo / "snapshots" / FAKE_COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    # The real DeBERTa-v3 settings, except depth (1 layer instead of 6/12/24) and intermediate size.
    DebertaV2Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=heads, intermediate_size=256,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7, max_relative_positions=-1,
        position_biased_input=False, type_vocab_size=0, pad_token_id=0,
    ).save_pretrained(snapshot)  # fmt: skip
    tokenizer.save_pretrained(snapshot)


@pytest.fixture(scope="module")
def fake_hub(tmp_path_factory):
    """A Hugging Face cache holding the four backbones; the Hub itself is off."""
    from huggingface_hub import constants

    cache = tmp_path_factory.mktemp("hf_hub_cache")
    tokenizers = {}
    for name, (_, _, _, base_len) in BACKBONES.items():
        if base_len not in tokenizers:
            tokenizers[base_len] = _tokenizer(base_len)
        _write_backbone(cache, name, tokenizers[base_len])
    del tokenizers
    with pytest.MonkeyPatch.context() as mp:
        # huggingface_hub and transformers read these module constants at call time.
        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setenv("HF_HUB_CACHE", str(cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint_configs")
    yield path
    shutil.rmtree(path, ignore_errors=True)  # hundreds of MB per weights file: never leave them behind


@pytest.mark.slow
def test_fake_backbones_resolve_offline(fake_hub):
    """The fake cache answers like a real one, by Hub id, with the real geometry."""
    from transformers import AutoConfig, AutoTokenizer

    for name, (hidden, _, vocab, base_len) in BACKBONES.items():
        cfg = AutoConfig.from_pretrained(name)
        assert (cfg.model_type, cfg.hidden_size, cfg.vocab_size) == ("deberta-v2", hidden, vocab)
        tok = AutoTokenizer.from_pretrained(name)
        assert len(tok) == base_len
        assert [tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id] == [0, 1, 2, 3]
        assert tok.mask_token_id == base_len - 1
        ids = tok(["Bill", "Gates"], is_split_into_words=True)["input_ids"]
        assert ids[0] == 1 and ids[-1] == 2 and len(ids) > 4  # [CLS] subwords [SEP]


# ---------------------------------------------------------------------------- helpers


def _expected_ids(raw: dict) -> tuple[int, int]:
    """(class_token_index, vocab_size) a config implies: its own values, else GLiNER's default of
    adding [FLERT], <<ENT>>, <<SEP>> after the backbone's tokens."""
    base_len = BACKBONES[raw["model_name"]][3]
    return raw.get("class_token_index", base_len + 1), raw.get("vocab_size", base_len + 3)


class HubTokenizers:
    """The tokenizer files a repo with explicit token ids ships: the backbone's tokenizer plus the
    added tokens, [FLERT] included or not as ``class_token_index`` says (made once per layout)."""

    def __init__(self, root: Path):
        self.root = root
        self.saved: dict[tuple, Path] = {}

    def copy_to(self, raw: dict, folder: Path) -> Path:
        """Copy the files into ``folder``; return the folder they were first saved in."""
        key = (
            raw["model_name"],
            raw["class_token_index"],
            raw["vocab_size"],
            raw.get("ent_token"),
            raw.get("sep_token"),
        )
        if key not in self.saved:
            self.saved[key] = self._make(raw, self.root / f"tokenizer-{len(self.saved)}")
        shutil.copytree(self.saved[key], folder, dirs_exist_ok=True)
        return self.saved[key]

    @staticmethod
    def _make(raw: dict, out: Path) -> Path:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(raw["model_name"])
        base_len = len(tok)
        class_index, vocab_size = raw["class_token_index"], raw["vocab_size"]
        if class_index == base_len + 1:  # library re-saves: [FLERT] first
            tok.add_tokens(
                [FLERT, raw.get("ent_token", "<<ENT>>"), raw.get("sep_token", "<<SEP>>")], special_tokens=True
            )
        elif class_index == base_len:  # v2.5: no [FLERT]
            tok.add_tokens(
                [raw.get("ent_token", "<<ENT>>"), raw.get("sep_token", "<<SEP>>")], special_tokens=True
            )
        else:
            raise AssertionError(
                f"class_token_index {class_index} fits neither layout of a {base_len}-token backbone"
            )
        assert len(tok) == vocab_size
        tok.save_pretrained(out)
        return out


class ReferenceSkeletons:
    """The reference package's model for a config on the meta device, as its
    ``from_pretrained(..., low_cpu_mem_usage=True)`` builds it: tokenizer from the folder, else
    from the backbone; special tokens added (ids -1) or validated (explicit ids); embeddings
    resized. Its state dict gives the key names and shapes the config implies."""

    def __init__(self):
        self.tokenizers: dict[str, object] = {}  # loaded once per source, copied per use (it gets mutated)

    def build(self, raw: dict, tokenizer_dir: Path | None):
        ref = _reference()
        cls = ref.UniEncoderTokenGLiNER if raw.get("span_mode") == TOKEN_MODE else ref.UniEncoderSpanGLiNER
        values = {k: v for k, v in raw.items() if k != "model_type"}
        if values.get("words_splitter_type", "whitespace") != "whitespace":
            values["words_splitter_type"] = (
                "whitespace"  # shapes do not depend on it; others need extra packages
            )
        config = cls.config_class(**values)
        source = str(tokenizer_dir or config.model_name)
        if source not in self.tokenizers:
            self.tokenizers[source] = cls._load_tokenizer(
                config, tokenizer_dir or Path("/nonexistent"), local_files_only=True
            )
        tokenizer = copy.deepcopy(self.tokenizers[source])
        with torch.device("meta"):
            model = cls(config, tokenizer=tokenizer, backbone_from_pretrained=False, local_files_only=True)
        cls._resize_token_embeddings(model, config, tokenizer, True)
        return model


def _random_value(key: str, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A seeded random tensor for one reference state-dict entry: O(1) activations, spread-out scores."""
    shape = tuple(like.shape)
    if key.endswith("position_ids"):
        return torch.arange(shape[-1]).expand(shape).clone()
    encoder = key.startswith("token_rep_layer.bert_layer.")
    if encoder and key.endswith("word_embeddings.weight") and shape[0] > EMBEDDING_PERIOD:
        # Drawing 128k-250k rows costs seconds per file; repeating 8191 random rows keeps the
        # shape and still gives every token the tests use (ids < 2000 and 128000+) its own row.
        block = _random_value(key, like.new_empty(EMBEDDING_PERIOD, shape[1]), g)
        out = torch.empty(shape, dtype=like.dtype)  # exactly its own storage: safetensors saves it as is
        for start in range(0, shape[0], EMBEDDING_PERIOD):
            out[start : start + EMBEDDING_PERIOD] = block[: shape[0] - start]
        return out
    out = torch.empty(shape, dtype=like.dtype)
    if out.dim() >= 2:
        gain = 1.0 if encoder else HEAD_GAIN
        bound = gain * (3.0 / shape[-1]) ** 0.5  # std gain / sqrt(fan_in)
        out.uniform_(-bound, bound, generator=g)
        if not encoder:
            # Rows summing to zero: the positive mean of a ReLU's output no longer adds one shared
            # vector to every span and label, which would push all scores to one side of 0.5.
            out -= out.mean(dim=-1, keepdim=True)
        return out
    if key.endswith("LayerNorm.weight"):
        return out.uniform_(0.8, 1.2, generator=g)
    if key == "scorer.out_mlp.3.bias":
        # A token-level entity needs its start, end and every inside score above 0.5: centred
        # logits rarely give all three, so they are shifted up (each is then above 0.5 more often).
        return out.uniform_(0.5, 1.0, generator=g)
    return out.uniform_(-0.02, 0.02, generator=g)


class WeightsCache:
    """One weights file per distinct reference state-dict signature (the most recent one kept)."""

    def __init__(self, root: Path):
        self.root = root
        self.signature: tuple | None = None
        self.path: Path | None = None

    def get(self, skeleton) -> Path:
        """The weights file for this reference model, written by the reference's own serializer."""
        state = skeleton.model.state_dict()
        signature = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in state.items())
        if signature == self.signature:
            return self.path
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)
            self.signature = self.path = None
        seed = zlib.crc32(repr(signature).encode())
        g = torch.Generator().manual_seed(seed)
        values = {k: _random_value(k, v, g) for k, v in state.items()}
        skeleton.model.load_state_dict(values, assign=True, strict=True)
        del values
        out = self.root / f"weights-{seed:08x}"
        out.mkdir()
        # What the reference's save_pretrained(safe_serialization=True) does for the weights
        # (it also writes its own config and tokenizer, which are not wanted here).
        from safetensors.torch import save_file

        state, metadata = skeleton._prepare_safetensors_state_dict(
            skeleton.prepare_state_dict(skeleton.model.state_dict())
        )
        save_file(state, str(out / checkpoint.SAFETENSORS_NAME), metadata=metadata or None)
        del state
        self.signature, self.path = signature, out / checkpoint.SAFETENSORS_NAME
        return self.path


@pytest.fixture(scope="module")
def weights_cache(workdir):
    return WeightsCache(workdir)


@pytest.fixture(scope="module")
def hub_tokenizers(workdir):
    return HubTokenizers(workdir)


@pytest.fixture(scope="module")
def skeletons():
    return ReferenceSkeletons()


def _load_anyner(folder: Path) -> AnyNER:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x
        from transformers.modeling_utils import no_init_weights

    with no_init_weights():  # see the module docstring: every parameter is compared with the file below
        return AnyNER.from_pretrained(folder)


def _entities(found: list) -> list[list[tuple]]:
    return [[(e["start"], e["end"], e["text"], e["label"]) for e in ents] for ents in found]


def _assert_same(ours: list, theirs: list, what: str) -> None:
    assert _entities(ours) == _entities(theirs), what
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(a, b, strict=True):
            assert abs(x["score"] - y["score"]) <= SCORE_TOL, (what, x, y)


# ---------------------------------------------------------------------------- the tests


def test_every_file_is_covered():
    """Each file in the folder is a config tested below, an added-tokens file, or documentation."""
    if CONFIG_DIR is None or not CONFIG_DIR.is_dir():
        pytest.skip(ABSENT)
    others = [
        _file_id(p)
        for p in sorted(CONFIG_DIR.rglob("*"))
        if p.is_file()
        and not p.name.startswith(("gliner_config", "added_tokens"))
        and p.name not in ("README.md", "PROVENANCE.md")
    ]
    assert not others, f"files no test covers: {others}"
    kinds = [_kind(p) for p in _config_files()]
    counts = {k: kinds.count(k) for k in ("span", "token", "variant", "unreadable")}
    # As documented in the folder's README (its 4 "other variants" are all token-level); update
    # when files are added there.
    assert counts == {"span": 24, "token": 4, "variant": 0, "unreadable": 12}, counts


@pytest.mark.slow
@pytest.mark.parametrize("path", _added_tokens_params())
def test_added_tokens_files_match_the_fake_backbone(path, fake_hub):
    """The published added_tokens files give the same ids as the fake tokenizer plus GLiNER's tokens."""
    from transformers import AutoTokenizer

    published = json.loads(path.read_text(encoding="utf-8"))
    configs = [
        json.loads(p.read_text()) for p in path.parent.glob("gliner_config*.json") if _kind(p) != "unreadable"
    ]
    backbone = (
        configs[0]["model_name"] if configs else "microsoft/deberta-v3-large"
    )  # all are large-v2.x repos
    tok = AutoTokenizer.from_pretrained(backbone)
    base_len = len(tok)
    extra = [FLERT] if FLERT in published else []
    tok.add_tokens([*extra, "<<ENT>>", "<<SEP>>"], special_tokens=True)
    assert {t: tok.convert_tokens_to_ids(t) for t in published} == published
    assert published["[MASK]"] == base_len - 1
    assert published["<<ENT>>"] == base_len + len(extra)
    for raw in configs:
        assert (raw["class_token_index"], raw["vocab_size"]) == (published["<<ENT>>"], len(tok))


@pytest.mark.slow
@pytest.mark.parametrize("path", _params("unreadable"))
def test_unreadable_config_is_refused(path, workdir, fake_hub):
    """Partial excerpts and the invalid third-party file: CheckpointError naming the file."""
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text(encoding="utf-8"))  # the test data really is not JSON
    folder = workdir / path.parent.name / path.name
    folder.mkdir(parents=True)
    shutil.copyfile(path, folder / checkpoint.CONFIG_NAME)
    with pytest.raises(CheckpointError) as info:
        AnyNER.from_pretrained(folder)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(folder / checkpoint.CONFIG_NAME) in message
    assert "not valid JSON" in message
    assert "line " in message  # the position json reports, so the user can find the fault


@pytest.mark.slow
@pytest.mark.parametrize("path", _params("variant"))
def test_other_variant_is_refused(path, workdir, fake_hub):
    """Token-level (and other non-span) configs: NotImplementedError naming the field and its value."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    field, value = _variant_field(raw)
    folder = workdir / path.parent.name / path.name
    folder.mkdir(parents=True)
    shutil.copyfile(path, folder / checkpoint.CONFIG_NAME)
    with pytest.raises(NotImplementedError) as info:
        AnyNER.from_pretrained(folder)
    message = str(info.value)
    assert f"{field}={value!r}" in message, message
    assert str(folder / checkpoint.CONFIG_NAME) in message
    try:
        reference = _reference()
    except pytest.skip.Exception:
        return  # the anyner part above is the requirement; the cross-check needs the reference
    # The reference agrees that this is not a uni-encoder span model.
    with pytest.raises(ValueError, match="token_level"):
        reference.UniEncoderSpanConfig(**{k: v for k, v in raw.items() if k != "model_type"})


@pytest.mark.slow
@pytest.mark.parametrize("path", _params("span", "token"))
def test_span_config_loads(path, workdir, fake_hub, weights_cache, hub_tokenizers, skeletons):
    """Folder = the exact config file + random weights of the shapes the reference derives from it
    (span and token-level models).

    anyner loads it; the network's structure follows the config; every parameter equals the
    file's; a prediction runs; and where the reference can load the folder too, both find the
    same entities on a few sentences.
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    explicit_ids = "class_token_index" in raw
    base = workdir / path.parent.name / path.name
    plain = base / "plain"  # what the requirement names: config + weights, nothing else
    plain.mkdir(parents=True)
    shutil.copyfile(path, plain / checkpoint.CONFIG_NAME)
    hub = tokenizer_dir = None
    if explicit_ids:  # these repos also ship the tokenizer with the added tokens
        hub = base / "with-tokenizer"
        hub.mkdir()
        shutil.copyfile(path, hub / checkpoint.CONFIG_NAME)
        tokenizer_dir = hub_tokenizers.copy_to(raw, hub)
    try:
        skeleton = skeletons.build(raw, tokenizer_dir)
        class_index, vocab_size = _expected_ids(raw)
        assert (skeleton.config.class_token_index, skeleton.config.vocab_size) == (class_index, vocab_size)
        weights = weights_cache.get(skeleton)
        del skeleton
        for folder in filter(None, (plain, hub)):
            (folder / checkpoint.SAFETENSORS_NAME).hardlink_to(weights)

        ours = _load_anyner(plain)
        _check_structure(ours, raw, class_index, vocab_size)
        _check_parameters(ours, weights)
        found = ours.predict_batch(SENTENCES, LABELS, threshold=0.5)
        assert isinstance(found, list) and all(isinstance(x, list) for x in found)
        assert all(
            text[e.start : e.end] == e.text and e.label in LABELS
            for text, x in zip(SENTENCES, found, strict=True)
            for e in x
        )
        ours_found = [[e.to_dict() for e in x] for x in found]
        summary = (
            f"{_file_id(path)}: loaded (class_token_index {class_index}, vocab {vocab_size}, "
            f"D {ours.config.hidden_size}, {ours.config.span_mode}, rnn {ours.config.num_rnn_layers}, "
            f"projection {ours.model.encoder.projection is not None}); {sum(map(len, found))} entities"
        )
        del ours

        if hub is not None:  # the same repo as published, tokenizer included
            again = _load_anyner(hub)
            assert (again.config.class_token_index, again.config.vocab_size) == (class_index, vocab_size)
            _assert_same(
                again.batch_predict_entities(SENTENCES, LABELS, threshold=0.5), ours_found, "with tokenizer"
            )
            del again

        if raw.get("words_splitter_type", "whitespace") == "whitespace":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _reference().GLiNER.from_pretrained(
                    str(hub or plain), local_files_only=True, low_cpu_mem_usage=True
                )
                theirs = ref.inference(SENTENCES, LABELS, threshold=0.5, flat_ner=True)
            assert ref.config.class_token_index == class_index
            _assert_same(ours_found, theirs, f"anyner vs reference on {_file_id(path)}")
            assert sum(map(len, theirs)) > 0, "the random head found nothing: the comparison says little"
            del ref
            summary += ", identical to the reference's"
        print(summary)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _check_structure(ours: AnyNER, raw: dict, class_index: int, vocab_size: int) -> None:
    cfg, net = ours.config, ours.model
    hidden, _, _, _ = BACKBONES[raw["model_name"]]
    D = raw.get("hidden_size", 512)
    # token ids: the config's, or GLiNER's derived ones ([FLERT] added) for files without them
    assert (cfg.class_token_index, cfg.vocab_size) == (class_index, vocab_size)
    assert ours.tokenizer.convert_tokens_to_ids(cfg.ent_token) == class_index
    assert ours.tokenizer.convert_tokens_to_ids(cfg.sep_token) == class_index + 1
    assert len(ours.tokenizer) == vocab_size
    assert net.encoder.transformer.get_input_embeddings().weight.shape == (vocab_size, hidden)
    # widths: the head's D, the encoder's own width, a projection exactly when they differ
    assert cfg.hidden_size == D
    assert net.encoder.transformer.config.hidden_size == hidden
    if hidden == D:
        assert net.encoder.projection is None
    else:
        assert net.encoder.projection.weight.shape == (D, hidden)
    # BiLSTM: has_rnn when given, else num_rnn_layers, else GLiNER's default of one layer
    if "has_rnn" in raw:
        layers = raw.get("num_rnn_layers", 1) if raw["has_rnn"] else 0
    else:
        layers = raw.get("num_rnn_layers", 1)
    if layers:
        assert net.rnn is not None and net.rnn.lstm.num_layers == layers
        assert (net.rnn.lstm.input_size, net.rnn.lstm.hidden_size) == (D, D // 2)
    else:
        assert net.rnn is None
    # span layer follows span_mode; max_width as written; token-level models have a scorer instead
    span_mode = raw.get("span_mode", "markerV0")
    assert cfg.span_mode == span_mode
    if span_mode == TOKEN_MODE:
        assert cfg.model_type == "uni_encoder_token"
        assert type(net.scorer) is TokenScorer and not hasattr(net, "span")
        assert net.scorer.proj_token.weight.shape == (2 * D, D)
    else:
        assert type(net.span) is {"marker": Marker, "markerV0": MarkerV0}[span_mode]
        assert net.span.max_width == cfg.max_width == raw.get("max_width", 12)
    assert cfg.max_len == raw.get("max_len", 384)


def _check_parameters(ours: AnyNER, weights: Path) -> None:
    """Every anyner parameter holds the file's tensor under GLiNER's name (same key set both ways).

    For the 128k-250k-row word embeddings the first 2048 rows (every token the sentences use),
    a middle block and the last rows (the added prompt tokens) are compared, to spare copying
    half a gigabyte per config; a tensor left unloaded or mis-mapped differs everywhere.
    """
    from safetensors import safe_open

    buffers = {name for name, _ in ours.model.named_buffers()}
    mine = {
        checkpoint.anyner_to_gliner_key(k): v for k, v in ours.model.state_dict().items() if k not in buffers
    }
    with safe_open(str(weights), framework="pt") as f:
        keys = {k for k in f.keys() if not k.endswith("position_ids")}
        assert set(mine) == keys
        for key in sorted(keys):
            rows = mine[key].shape[0] if mine[key].dim() == 2 else 0
            if key.endswith("word_embeddings.weight") and rows > 3 * 2048:
                theirs = f.get_slice(key)
                assert list(theirs.get_shape()) == list(mine[key].shape), key
                for a, b in ((0, 2048), (rows // 2, rows // 2 + 2048), (rows - 16, rows)):
                    assert torch.equal(mine[key][a:b], theirs[a:b]), (key, a, b)
            else:
                assert torch.equal(mine[key], f.get_tensor(key)), key
