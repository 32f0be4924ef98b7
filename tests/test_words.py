"""Word splitting and offsets on hard text."""

from __future__ import annotations

import re

import pytest

from anyner.words import split_words

GLINER_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("state-of-the-art snake_case", ["state-of-the-art", "snake_case"]),
        ("...!!?", [".", ".", ".", "!", "!", "?"]),
        ("a\tb\nc\r\nd", ["a", "b", "c", "d"]),
        ("naïve café — Zürich", ["naïve", "café", "—", "Zürich"]),
        ("東京タワーに行った", ["東京タワーに行った"]),
        ("I ❤️ NY 🗽!", ["I", "❤", "️", "NY", "🗽", "!"]),
        ("e\u0301te\u0301", ["e", "\u0301", "te", "\u0301"]),
        ("  ", []),
        ("", []),
        ("U.S.A. $5,000", ["U", ".", "S", ".", "A", ".", "$", "5", ",", "000"]),
        ("zero\u200bwidth", ["zero", "\u200b", "width"]),
    ],
)
def test_split_words(text, words):
    assert [w.text for w in split_words(text)] == words


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        "a\tb\nc",
        "東京 and Zürich 🗽 e\u0301",
        "مرحبا بالعالم",
        "x" * 1000,
        "\x00a\x01b",
        "--a--",
    ],
)
def test_offsets_slice_back_and_match_gliner(text):
    words = split_words(text)
    for w in words:
        assert text[w.start : w.end] == w.text
    assert [(w.text, w.start, w.end) for w in words] == [
        (m.group(), m.start(), m.end()) for m in GLINER_PATTERN.finditer(text)
    ]
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))


def test_rejects_non_strings():
    with pytest.raises(TypeError):
        split_words(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the checkpoints' other splitters

SPLITTER_TEXTS = {
    "spacy": ["Dr. Smith's e-mail isn't working (again)!", "U.S.A. won 3-2 in N.Y.C. on 1/2/2024."],
    "jieba": ["我爱北京天安门，北京是中国的首都。", "阿里巴巴集团在杭州成立于1999年。"],
    "janome": ["東京都に住んでいます。", "トヨタ自動車は愛知県に本社を置く。"],
    "mecab": ["안녕하세요 저는 학생입니다", "삼성전자는 서울에 본사가 있다."],
    "hindi": ["नरेंद्र मोदी भारत के प्रधानमंत्री हैं।"],
    "universal": [
        "我爱北京天安门，北京是中国的首都。",
        "東京都に住んでいます。",
        "Angela Merkel visited Paris.",
    ],
}
NEEDS = {"spacy": "spacy", "jieba": "jieba3", "janome": "janome", "mecab": "mecab", "hindi": "indicnlp",
         "universal": "langdetect"}  # fmt: skip


@pytest.mark.parametrize("name", list(SPLITTER_TEXTS))
def test_other_splitters_give_the_reference_words(name):
    pytest.importorskip(NEEDS[name], reason=f"the {name} splitter's package is not installed")
    if name == "universal":
        for module in ("jieba3", "janome", "spacy"):
            pytest.importorskip(module, reason=f"the universal splitter's {module} is not installed")
    ref = pytest.importorskip(
        "gliner.data_processing.tokenizer", reason="the reference gliner is not installed"
    )
    from anyner.words import get_splitter

    theirs = ref.WordsSplitter(name) if name != "universal" else ref.MultiLangWordsSplitter.__new__(
        ref.MultiLangWordsSplitter
    )  # fmt: skip
    if (
        name == "universal"
    ):  # the reference builds every language's splitter (camel-tools too): only some here
        from langdetect import detect

        theirs.detect, theirs.logging = detect, False
        theirs.lang2splitter = {"zh-cn": ref.JiebaTokenSplitter(), "ja": ref.JanomeJaTokenSplitter()}
        theirs.universal_splitter = ref.SpaCyTokenSplitter(lang="xx")
    ours = get_splitter(name)
    for text in SPLITTER_TEXTS[name]:
        got = [(w.text, w.start, w.end) for w in ours(text)]
        assert got == [tuple(x) for x in theirs(text)], text
        assert all(text[s:e] == t for t, s, e in got)
        if name in ("jieba", "janome", "mecab"):
            assert len(got) > 3, "a sentence must not collapse into one word"


def test_a_missing_splitter_package_names_the_extra(monkeypatch):
    import builtins

    from anyner import words

    real = builtins.__import__

    def no_janome(name, *args, **kwargs):
        if name.startswith("janome"):
            raise ImportError("No module named 'janome'")
        return real(name, *args, **kwargs)

    words._make.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_janome)
    with pytest.raises(
        ImportError,
        match=r"words_splitter_type='janome' needs the janome package: pip install 'anyner\[japanese\]'",
    ):
        words.get_splitter("janome")
    words._make.cache_clear()
    with pytest.raises(ValueError, match="words_splitter_type='polyglot' is not one of whitespace"):
        words.get_splitter("polyglot")


@pytest.mark.slow
def test_a_jieba_checkpoint_predicts_as_the_reference(ref_v21, tmp_path):
    """A checkpoint whose config says words_splitter_type 'jieba': Chinese text is cut into words as the
    reference cuts it, and both find the same entities."""
    import json
    import shutil

    pytest.importorskip("jieba3", reason="jieba3 is not installed")
    gliner = pytest.importorskip("gliner", reason="the reference gliner package is not installed")
    from anyner import AnyNER

    folder = tmp_path / "zh"
    shutil.copytree(ref_v21, folder)
    cfg = json.loads((folder / "gliner_config.json").read_text())
    cfg["words_splitter_type"] = "jieba"
    (folder / "gliner_config.json").write_text(json.dumps(cfg))
    texts = SPLITTER_TEXTS["jieba"] + ["马云在杭州创立了阿里巴巴。", "李白是唐朝的诗人。"]
    labels = ["人物", "地点", "组织", "person", "location"]
    ours = AnyNER.from_pretrained(folder)
    theirs = gliner.GLiNER.from_pretrained(str(folder), local_files_only=True)
    a = ours.batch_predict_entities(texts, labels, threshold=0.5)
    b = theirs.inference(texts, labels, threshold=0.5)
    assert [[(e["start"], e["end"], e["label"]) for e in x] for x in a] == [
        [(e["start"], e["end"], e["label"]) for e in x] for x in b
    ]
    assert sum(map(len, a)) > 0
    assert all(max((len(e["text"]) for e in x), default=0) < len(t) for x, t in zip(a, texts, strict=True))
