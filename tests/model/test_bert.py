"""anyner's own BERT module against transformers' BertModel, and the fast torch start it gives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from anyner import AnyNER
from anyner.model import bert


def _hf_bert(minilm_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir)).eval()


def test_same_outputs_as_transformers_on_real_weights(minilm_dir):
    hf = _hf_bert(minilm_dir)
    values = hf.config.to_dict()
    values["model_type"] = hf.config.model_type
    assert bert.supports(values)
    ours = bert.BertModel(values).eval()
    missing, unexpected = ours.load_state_dict(hf.state_dict(), strict=False)
    assert not missing and not unexpected  # the same parameter names, every one
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (3, 40), generator=g)
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 25:] = 0  # padded rows, as in a batch
    mask[2, 5:] = 0
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask).last_hidden_state
    keep = mask.bool()
    assert (got[keep] - want[keep]).abs().max().item() < 1e-5


def test_supports_only_what_it_computes(minilm_dir):
    values = json.loads((minilm_dir / "config.json").read_text())
    values["model_type"] = "bert"
    assert bert.supports(values)
    for change in (
        {"model_type": "deberta-v2"},
        {"position_embedding_type": "relative_key"},
        {"hidden_act": "gelu_new"},
        {"is_decoder": True},
        {"num_attention_heads": 5},  # 384 is not a multiple of 5
        {"hidden_size": None},
    ):
        assert not bert.supports({**values, **change}), change
    assert not bert.supports(None)


def test_builtin_model_same_logits_and_entities_either_module():
    fast = AnyNER.from_pretrained()
    slow = AnyNER.from_pretrained(encoder_module="transformers")
    assert isinstance(fast.model.encoder.transformer, bert.BertModel)
    assert not isinstance(slow.model.encoder.transformer, bert.BertModel)
    texts = [
        "Bill Gates founded Microsoft on April 4, 1975.",
        "The patient was given 500 mg of amoxicillin for pneumonia in Boston.",
    ]
    labels = ["person", "organization", "date", "drug", "disease", "city"]
    for text in texts:
        a = fast.predict(text, labels, threshold=0.3)
        b = slow.predict(text, labels, threshold=0.3)
        assert [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]
        assert a  # the check means something only if entities come out
        for x, y in zip(a, b, strict=True):
            assert abs(x.score - y.score) < 1e-5


def test_encoder_module_checked():
    with pytest.raises(ValueError, match="encoder_module must be one of"):
        AnyNER.from_pretrained(encoder_module="native")


def test_saved_from_the_fast_module_reloads_the_same(tmp_path):
    fast = AnyNER.from_pretrained()
    fast.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "gliner_config.json").read_text())
    assert saved["encoder_config"]["model_type"] == "bert"
    again = AnyNER.from_pretrained(tmp_path / "m", encoder_module="transformers")
    text, labels = "Lionel Messi joined Inter Miami in 2023.", ["person", "sports team", "date"]
    a, b = fast.predict(text, labels), again.predict(text, labels)
    assert a and [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]


def test_torch_path_does_not_import_transformers():
    code = (
        "import sys\n"
        "from anyner import AnyNER\n"
        "m = AnyNER.from_pretrained(backend='torch')\n"
        "assert m.predict('Bill Gates founded Microsoft.', ['person', 'organization'])\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('transformers', 'sklearn')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
