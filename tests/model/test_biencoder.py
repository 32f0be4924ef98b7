"""Bi-encoder label vectors: encode once, reuse, save, cache; the errors around them."""

from __future__ import annotations

import numpy as np
import pytest

from anyner import AnyNER
from anyner.label_vectors import LabelCache, LabelEmbeddings

pytestmark = pytest.mark.slow  # builds a reference bi-encoder (MiniLM twice)

TEXTS = [
    "Steven Spielberg directed Jaws in 1975 , a thriller about a shark .",
    "Show me comedies with Jim Carrey from the nineties",
]
LABELS = {
    "director": "director of a film",
    "title": "film title",
    "year": "year",
    "genre": "genre",
    "actor": "actor",
}


@pytest.fixture(scope="module")
def bi(ref_bi_token):
    return AnyNER.from_pretrained(ref_bi_token)


def test_encoded_labels_give_the_same_entities_and_skip_the_label_encoder(bi, tmp_path, monkeypatch):
    want = bi.predict_batch(TEXTS, LABELS)
    assert sum(map(len, want)) > 0
    emb = bi.encode_labels(LABELS)
    assert emb.names == tuple(LABELS) and emb.prompts == tuple(LABELS.values())
    assert emb.vectors.shape == (5, bi.config.hidden_size) and emb.vectors.dtype == np.float32
    path = emb.save(tmp_path / "labels.safetensors")
    again = LabelEmbeddings.load(path)
    assert again.names == emb.names and np.array_equal(again.vectors, emb.vectors)

    def refuse(*_a, **_k):
        raise AssertionError("the label encoder ran although the vectors were given")

    monkeypatch.setattr(bi.model, "encode_labels", refuse)
    assert bi.predict_batch(TEXTS, again) == want
    assert bi.predict(TEXTS[0], again, flat=False) == bi.predict_batch(TEXTS[:1], again, flat=False)[0]


def test_the_cache_encodes_each_label_text_once(bi):
    bi.label_cache = LabelCache(size=3)
    bi.predict(TEXTS[0], ["a", "b"])
    bi.predict(TEXTS[1], ["b", "c", "d"])
    stats = bi.label_cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 4, 3)  # "a" left: the oldest
    one = bi.encode_labels(["x"]).vectors
    assert np.array_equal(bi.encode_labels(["y", "x"]).vectors[1], one[0])  # cached vector, same value


def test_label_vectors_errors(bi, ref_v21, tmp_path):
    emb = bi.encode_labels(["person"])
    uni = AnyNER.from_pretrained(ref_v21)
    with pytest.raises(NotImplementedError, match="encode_labels needs a bi-encoder"):
        uni.encode_labels(["person"])
    with pytest.raises(NotImplementedError, match="need a bi-encoder"):
        uni.predict(TEXTS[0], emb)
    other = LabelEmbeddings(emb.names, emb.prompts, np.zeros((1, 7), dtype=np.float32), emb.model)
    with pytest.raises(ValueError, match="width 7"):
        bi.predict(TEXTS[0], other)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a file written by LabelEmbeddings.save"):
        LabelEmbeddings.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no model\.onnx.*anyner export onnx"):
        AnyNER.from_pretrained(bi_folder(bi, tmp_path), backend="onnx")  # saved, not exported


def bi_folder(bi, tmp_path):
    return bi.save_pretrained(tmp_path / "saved")


def test_health_reports_label_cache_hits(bi):
    from fastapi.testclient import TestClient

    from anyner.serve import create_app

    bi.label_cache = LabelCache()
    with TestClient(create_app(bi)) as client:
        body = {"texts": [TEXTS[0]], "labels": ["director", "title"]}
        assert client.post("/v1/entities", json=body).status_code == 200
        assert client.post("/v1/entities", json=body).status_code == 200
        cache = client.get("/health").json()["label_cache"]
    assert cache == {"entries": 2, "size": 16384, "hits": 2, "misses": 2}
