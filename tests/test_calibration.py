"""Calibrated thresholds (``threshold="auto"``): the calibration.json file (load, save, checks),
how a label's threshold is resolved, the band fit and its re-decoding (equal to predict), and
"auto" through the Python API (torch and ONNX), the CLI, HTTP and spaCy, with the errors of a
model that has no calibration."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from anyner import AnyNER
from anyner.calibrate import fit_bands, format_fit, redecode, score_dev_set
from anyner.calibration import CALIBRATION_NAME, Band, Calibration
from anyner.cli import main
from anyner.evaluate import evaluate_folder
from tests.conftest import randomize_head, same_entities

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABELS = ["person", "organization", "city"]
SENTENCES = [
    "Bill Gates founded Microsoft in Albuquerque in 1975 .",
    "Angela Merkel met Emmanuel Macron in Paris on Monday .",
    "Apple released the iPhone in California in 2007 .",
    "Ada Lovelace wrote the first program for Charles Babbage in London .",
    "The film was directed by Steven Spielberg and scored by John Williams .",
    "Lionel Messi joined Inter Miami and moved to Florida .",
]
# the gold of the dev set: what the tiny model finds at these thresholds (so a fit has something to find)
GOLD_THRESHOLDS = {"person": 0.7, "organization": 0.6, "city": 0.65}
COUNTS = {"Person": 50_000, "organization": 500, "unused label": 3}  # city: 0 (not in the counts)
NOT_CALIBRATED = "has no calibration"


def calibration_dict(**changes) -> dict:
    data = {
        "version": 1,
        "default": 0.5,
        "bands": [
            {"max_count": 0, "threshold": 0.3},
            {"max_count": 1000, "threshold": 0.4},
            {"max_count": None, "threshold": 0.5},
        ],
        "labels": {"person": 0.55},
        "label_counts": {"person": 51234, "actor": 812},
        "fitted_on": "a test",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


# ---------------------------------------------------------------------- models and data


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """A saved tiny model (random BERT, random head) without calibration.json; its scores lie
    between about 0.5 and 0.8, so that thresholds in that range change what it finds."""
    torch.manual_seed(0)
    model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    randomize_head(model.model, 0, gain=0.8)
    return model.save_pretrained(tmp_path_factory.mktemp("plain_model"))


@pytest.fixture(scope="module")
def plain(plain_dir) -> AnyNER:
    return AnyNER.from_pretrained(plain_dir)


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory, plain_dir) -> Path:
    """The same model with a calibration.json."""
    out = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(plain_dir, out)
    (out / CALIBRATION_NAME).write_text(json.dumps(calibration_dict()), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def calibrated(calibrated_dir) -> AnyNER:
    return AnyNER.from_pretrained(calibrated_dir)


@pytest.fixture(scope="module")
def dev(tmp_path_factory, plain) -> Path:
    """A benchmark folder whose gold is the tiny model's entities at GOLD_THRESHOLDS."""
    folder = tmp_path_factory.mktemp("dev") / "tiny-dev"
    folder.mkdir()
    found = plain.predict_words([s.split() for s in SENTENCES], LABELS, threshold=GOLD_THRESHOLDS)
    records = [
        {
            "sentence": s,
            "entities": [{"name": e.text, "type": e.label, "pos": [e.start, e.end]} for e in ents],
        }
        for s, ents in zip(SENTENCES, found, strict=True)
    ]
    assert sum(len(r["entities"]) for r in records) >= 4, "the gold has entities"
    (folder / "test.json").write_text(json.dumps(records), encoding="utf-8")
    (folder / "labels.json").write_text(json.dumps([x.title() for x in LABELS]), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def fit(plain, dev):
    return fit_bands(plain, [dev], COUNTS)


# ---------------------------------------------------------------------- the file


def test_save_and_load_round_trip(tmp_path):
    cal = Calibration.from_dict(calibration_dict(), "x.json")
    path = cal.save(tmp_path)  # a folder: calibration.json inside it
    assert path == tmp_path / CALIBRATION_NAME
    assert [p.name for p in tmp_path.iterdir()] == [CALIBRATION_NAME], "no temporary file is left"
    assert json.loads(path.read_text(encoding="utf-8")) == calibration_dict()
    for source in (tmp_path, path):
        again = Calibration.load(source)
        assert again == cal and again.source == str(path)
    assert Calibration.find(tmp_path) == cal
    assert Calibration.find(tmp_path / "nothing-here") is None
    with pytest.raises(FileNotFoundError, match="no such calibration file"):
        Calibration.load(tmp_path / "missing.json")
    # saving again replaces the file whole
    other = Calibration(default=0.4, bands=(Band(None, 0.45),))
    other.save(path)
    assert Calibration.load(path) == other and len(list(tmp_path.iterdir())) == 1


def test_optional_fields_and_normalized_keys():
    cal = Calibration.from_dict(
        {"version": 1, "default": 0.5, "bands": [{"max_count": None, "threshold": 1}]}
    )
    assert cal.labels == {} and cal.label_counts == {} and cal.fitted_on == ""
    assert cal.bands == (Band(None, 1.0),)
    cal = Calibration(labels={" Person ": 0.2}, label_counts={"CITY": 4})
    assert cal.labels == {"person": 0.2} and cal.label_counts == {"city": 4}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "expected a JSON object"),
        (calibration_dict(version=2), "version must be 1"),
        (calibration_dict(version=...), "version must be 1"),
        (calibration_dict(bands=...), "'bands' is missing"),
        (calibration_dict(default=...), "'default' is missing"),
        (calibration_dict(default=1.5), r"default must be a number in \[0, 1\]"),
        (calibration_dict(default=True), r"default must be a number in \[0, 1\]"),
        (calibration_dict(band=[]), "unknown field 'band'"),
        (calibration_dict(bands=[]), "bands must be a non-empty list"),
        (calibration_dict(bands={"max_count": None}), "bands must be a list"),
        (calibration_dict(bands=[{"max_count": None}]), r"bands\[0\] must be an object with exactly"),
        (
            calibration_dict(
                bands=[
                    {"max_count": 10, "threshold": 0.3},
                    {"max_count": 5, "threshold": 0.3},
                    {"max_count": None, "threshold": 0.5},
                ]
            ),
            r"sorted by max_count.*bands\[1\] has 5 after 10",
        ),  # fmt: skip
        (
            calibration_dict(
                bands=[
                    {"max_count": 10, "threshold": 0.3},
                    {"max_count": 10, "threshold": 0.3},
                    {"max_count": None, "threshold": 0.5},
                ]
            ),
            "sorted by max_count",
        ),  # fmt: skip
        (
            calibration_dict(bands=[{"max_count": 10, "threshold": 0.3}]),
            "the last band must have max_count null",
        ),
        (
            calibration_dict(
                bands=[{"max_count": None, "threshold": 0.3}, {"max_count": None, "threshold": 0.3}]
            ),
            r"bands\[0\] has max_count null, which only the last band may have",
        ),
        (
            calibration_dict(
                bands=[{"max_count": -1, "threshold": 0.3}, {"max_count": None, "threshold": 0.3}]
            ),
            r"max_count must be an integer >= 0, got -1",
        ),  # fmt: skip
        (
            calibration_dict(
                bands=[{"max_count": 1.5, "threshold": 0.3}, {"max_count": None, "threshold": 0.3}]
            ),
            r"max_count must be an integer >= 0, got 1.5",
        ),  # fmt: skip
        (
            calibration_dict(bands=[{"max_count": None, "threshold": "0.5"}]),
            r"threshold must be a number in \[0, 1\]",
        ),
        (calibration_dict(labels=["person"]), "labels must be an object"),
        (calibration_dict(labels={"person": 2}), r"labels\['person'\] must be a number in \[0, 1\]"),
        (calibration_dict(labels={"  ": 0.2}), "blank or non-string label"),
        (calibration_dict(label_counts={"person": -3}), r"label_counts\['person'\] must be an integer >= 0"),
        (calibration_dict(label_counts={"person": 3.0}), "must be an integer >= 0"),
        (calibration_dict(label_counts={"Person": 3, "person ": 4}), "two values"),
        (calibration_dict(fitted_on=3), "fitted_on must be a string"),
    ],
)
def test_a_bad_file_is_a_value_error_naming_it(tmp_path, data, message):
    path = tmp_path / CALIBRATION_NAME
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        Calibration.load(tmp_path)
    assert str(path) in str(info.value)


def test_a_file_that_is_no_json_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / CALIBRATION_NAME
    path.write_text('{"version": 1,\n "default": }', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:2: invalid JSON"):
        Calibration.load(path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="not UTF-8"):
        Calibration.load(path)


def test_a_bad_file_fails_the_model_load(tmp_path, calibrated_dir):
    folder = tmp_path / "model"
    shutil.copytree(calibrated_dir, folder)
    (folder / CALIBRATION_NAME).write_text(json.dumps(calibration_dict(version=7)), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{folder / CALIBRATION_NAME}: version must be 1"):
        AnyNER.from_pretrained(folder)


# ---------------------------------------------------------------------- resolution


def test_resolution_rules():
    cal = Calibration.from_dict(calibration_dict())
    # a label named in `labels` wins over its count; keys are stripped and lowercased
    assert cal.threshold_for("person") == cal.threshold_for("  PERSON ") == 0.55
    # else its count picks the first band with max_count null or >= count
    assert cal.threshold_for("actor") == 0.4  # 812 <= 1000
    assert cal.threshold_for("never seen") == 0.3  # count 0: the first band
    cal = Calibration.from_dict(
        calibration_dict(labels={}, label_counts={"a": 0, "b": 1, "c": 1000, "d": 1001})
    )
    assert cal.thresholds(["a", "b", "c", "d", "e"]) == {"a": 0.3, "b": 0.4, "c": 0.4, "d": 0.5, "e": 0.3}
    # labels with descriptions: the names are the keys, the descriptions play no part
    assert cal.thresholds({"D": "a person's name", "e": "d"}) == {"D": 0.5, "e": 0.3}
    assert cal.band_for(10**9) == Band(None, 0.5)
    with pytest.raises(TypeError, match="not the string"):
        cal.thresholds("person")


def test_auto_is_the_calibrations_dict_in_every_predict_method(calibrated):
    labels = [*LABELS, "date"]
    want = calibrated.calibration.thresholds(labels)
    assert want == {"person": 0.55, "organization": 0.3, "city": 0.3, "date": 0.3}
    text = SENTENCES[0]
    assert calibrated.predict(text, labels, threshold="auto") == calibrated.predict(
        text, labels, threshold=want
    )
    batch = calibrated.predict_batch(SENTENCES, labels, threshold="auto")
    assert batch == calibrated.predict_batch(SENTENCES, labels, threshold=want)
    assert any(batch), "the tiny model finds something"
    words = [s.split() for s in SENTENCES]
    assert calibrated.predict_words(words, labels, threshold="auto") == calibrated.predict_words(
        words, labels, threshold=want
    )
    assert calibrated.predict_entities(text, labels, threshold="auto") == calibrated.predict_entities(
        text, labels, threshold=want
    )
    assert calibrated.batch_predict_entities(SENTENCES, labels, threshold="auto") == [
        [e.to_dict() for e in ents] for ents in batch
    ]
    # one label set per text, and labels with descriptions (the name is the key)
    per_text = [["person"], {"City": "a city", "organization": "a company"}]
    got = calibrated.predict_batch(SENTENCES[:2], per_text, threshold="auto")
    same_entities(got[0], calibrated.predict(SENTENCES[0], ["person"], threshold={"person": 0.55}))
    same_entities(
        got[1], calibrated.predict(SENTENCES[1], per_text[1], threshold={"City": 0.3, "organization": 0.3})
    )


def test_auto_without_calibration_is_a_value_error(plain):
    assert plain.calibration is None
    for call in (
        lambda: plain.predict(SENTENCES[0], LABELS, threshold="auto"),
        lambda: plain.predict_batch([], LABELS, threshold="auto"),  # checked with no text too
        lambda: plain.predict_words([["Paris"]], LABELS, threshold="auto"),
        lambda: plain.predict_entities(SENTENCES[0], LABELS, threshold="auto"),
        lambda: plain.batch_predict_entities(SENTENCES, LABELS, threshold="auto"),
    ):
        with pytest.raises(ValueError, match=NOT_CALIBRATED) as info:
            call()
        assert "pass a number" in str(info.value)
    with pytest.raises(ValueError, match="must be a number"):
        plain.predict(SENTENCES[0], LABELS, threshold="AUTO")  # only "auto" itself
    with pytest.raises(TypeError, match="must be a Calibration or None"):
        plain.calibration = {"default": 0.5}


def test_the_calibration_is_saved_with_the_model_and_settable(tmp_path, plain, calibrated):
    out = calibrated.save_pretrained(tmp_path / "copy")
    assert Calibration.load(out) == calibrated.calibration
    out = plain.save_pretrained(tmp_path / "plain")
    assert not (out / CALIBRATION_NAME).exists()
    cal = Calibration(bands=(Band(None, 0.35),))
    try:
        plain.calibration = cal
        assert plain.predict(SENTENCES[0], LABELS, threshold="auto") == plain.predict(
            SENTENCES[0], LABELS, threshold=0.35
        )
    finally:
        plain.calibration = None


@pytest.fixture(scope="module")
def builtin_copy(tmp_path_factory) -> Path:
    """The built-in model's folder, copied, with a calibration.json."""
    from anyner.builtin import builtin_model_path

    out = tmp_path_factory.mktemp("builtin") / "builtin"
    shutil.copytree(builtin_model_path(), out)
    (out / CALIBRATION_NAME).write_text(json.dumps(calibration_dict()), encoding="utf-8")
    return out


def test_the_builtin_folder_and_the_onnx_runtime_read_the_calibration(builtin_copy, monkeypatch):
    import anyner.pipeline

    shipped = AnyNER.from_pretrained().calibration  # the shipped model's, fitted on its dev suite
    assert (
        shipped is not None and shipped.label_counts["person"] > 1000 and shipped.bands[-1].max_count is None
    )
    monkeypatch.setattr(anyner.pipeline, "builtin_model_path", lambda: builtin_copy)
    text, labels = "Bill Gates founded Microsoft on April 4, 1975.", ["person", "organization", "date"]
    for backend in ("torch", "onnx"):  # onnx: the torch-free runtime (ONNX Runtime and tokenizers)
        model = AnyNER.from_pretrained(backend=backend)
        assert model.calibration == Calibration.from_dict(calibration_dict()), backend
        want = model.calibration.thresholds(labels)
        assert model.predict(text, labels, threshold="auto") == model.predict(text, labels, threshold=want)
    onnx = AnyNER.from_pretrained(backend="onnx")
    onnx.calibration = None
    with pytest.raises(ValueError, match=NOT_CALIBRATED):
        onnx.predict(text, labels, threshold="auto")


# ---------------------------------------------------------------------- the fit


def test_fit_does_not_lower_dev_f1_and_reports_both(fit, dev, plain):
    assert len(fit.datasets) == 1
    d = fit.datasets[0]
    assert d.name == "tiny-dev" and d.sentences == len(SENTENCES)
    assert d.calibrated.f1 >= d.baseline.f1
    assert fit.micro_calibrated.f1 >= fit.micro_baseline.f1
    assert fit.micro_calibrated.f1 > fit.micro_baseline.f1, "the gold was made at other thresholds than 0.5"
    assert fit.average_f1_calibrated == d.calibrated.f1 and fit.average_f1_baseline == d.baseline.f1
    # the figure at 0.5 is anyner evaluate's
    assert d.baseline == evaluate_folder(plain, dev, threshold=0.5).scores
    cal = fit.calibration
    assert [b.max_count for b in cal.bands] == [0, 100, 1000, 10000, None]
    assert cal.label_counts == {"person": 50_000, "organization": 500, "unused label": 3}
    assert cal.labels == {}
    # person (50,000) is in the last band, organization (500) in 101..1000, city (0) in the first:
    # the bands without a dev label keep the default
    assert fit.band_labels == [["city"], [], ["organization"], [], ["person"]]
    assert cal.bands[1].threshold == cal.bands[3].threshold == cal.default == 0.5
    assert "tiny-dev (6 sentences)" in cal.fitted_on and "micro F1 at 0.5" in cal.fitted_on
    text = format_fit(fit)
    assert "tiny-dev" in text and "Average" in text and "F1@0.5" in text and "no dev label" in text
    assert json.loads(json.dumps(fit.to_json()))["calibration"] == cal.to_dict()


def test_redecoding_equals_predict(fit, dev, plain):
    scored = score_dev_set(plain, dev, floor=0.05)
    labels = scored.labels
    assert labels == LABELS  # lowercased from labels.json, as anyner evaluate prompts
    words = [[w.text for w in ws] for ws in scored.words]
    for threshold in (fit.calibration.thresholds(labels), 0.5, 0.05, {"person": 0.9}):
        again = redecode(scored, threshold)
        assert again == plain.predict_words(words, labels, threshold=threshold), threshold
    # and the calibrated F1 is what anyner evaluate --threshold auto finds
    try:
        plain.calibration = fit.calibration
        scores = evaluate_folder(plain, dev, threshold="auto").scores
    finally:
        plain.calibration = None
    assert scores == fit.datasets[0].calibrated
    with pytest.raises(ValueError, match="cannot be decoded below it"):
        redecode(scored, 0.01)


def test_fit_reuses_scored_sets_and_takes_its_settings(plain, dev):
    scored = score_dev_set(plain, dev, floor=0.05)
    again = fit_bands(plain, [scored], COUNTS)
    assert again.calibration.bands == fit_bands(plain, [dev], COUNTS).calibration.bands
    coarse = fit_bands(plain, [scored], COUNTS, edges=[1000], grid=[0.3, 0.6, 0.9], default=0.4, passes=1)
    assert [b.max_count for b in coarse.calibration.bands] == [1000, None]
    assert {b.threshold for b in coarse.calibration.bands} <= {0.3, 0.5, 0.6, 0.9}
    assert coarse.micro_calibrated.f1 >= coarse.micro_baseline.f1
    no_dev_label = fit_bands(plain, [scored], {}, edges=[], default=0.4)  # one band, every label in it
    assert len(no_dev_label.calibration.bands) == 1
    for kwargs, message in [
        ({"edges": [100, 10]}, "strictly increasing"),
        ({"edges": [-1]}, "integer >= 0"),
        ({"grid": []}, "grid is empty"),
        ({"grid": [1.5]}, r"\[0, 1\]"),
        ({"passes": 0}, "positive integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            fit_bands(plain, [scored], COUNTS, **kwargs)
    with pytest.raises(ValueError, match="no dev set"):
        fit_bands(plain, [], COUNTS)
    with pytest.raises(ValueError, match="above the lowest threshold tried"):
        fit_bands(plain, [score_dev_set(plain, dev, floor=0.2)], COUNTS)
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        fit_bands(plain, [scored], {"person": -1})


# ---------------------------------------------------------------------- the CLI


@pytest.fixture
def model_copy(tmp_path, plain_dir) -> Path:
    out = tmp_path / "model"
    shutil.copytree(plain_dir, out)
    return out


@pytest.fixture
def counts_file(tmp_path) -> Path:
    path = tmp_path / "counts.json"
    path.write_text(json.dumps(COUNTS), encoding="utf-8")
    return path


def test_cli_calibrate_writes_the_file_and_prints_f1(model_copy, counts_file, dev, fit, capsys):
    code = main(["calibrate", str(model_copy), "--dev", str(dev.parent), "--label-counts", str(counts_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    written = Calibration.load(model_copy)
    assert written.bands == fit.calibration.bands and written.label_counts == fit.calibration.label_counts
    assert "tiny-dev" in out and "Average" in out and "F1@0.5" in out and "F1 calibrated" in out
    assert f"wrote {model_copy / CALIBRATION_NAME}" in out
    assert f"{fit.datasets[0].baseline.f1:.1f}" in out and f"{fit.datasets[0].calibrated.f1:.1f}" in out
    # --limit and --bands
    code = main(["calibrate", str(model_copy), "--dev", str(dev), "--label-counts", str(counts_file),
                 "--limit", "3", "--bands", "0, 1000"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [b.max_count for b in Calibration.load(model_copy).bands] == [0, 1000, None]
    assert "(3 sentences)" in Calibration.load(model_copy).fitted_on and "first 3 sentences" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bands", "100,10"], "--bands must be strictly increasing"),
        (["--bands", "a,b"], "--bands must be comma-separated integers"),
        (["--limit", "0"], "--limit must be a positive integer"),
        (["--label-counts", "missing.json"], "cannot read missing.json: no such file"),
        (["--label-counts", "BAD"], "expected a JSON object label -> count"),
        (["--dev", "nowhere"], "nowhere is not a benchmark folder"),
    ],
)
def test_cli_calibrate_bad_arguments_exit_2(
    model_copy, counts_file, dev, tmp_path, monkeypatch, capsys, extra, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text("[1, 2]", encoding="utf-8")
    argv = ["calibrate", str(model_copy), "--dev", str(dev), "--label-counts", str(counts_file), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("anyner: error: ") and message in err, err
    assert not (model_copy / CALIBRATION_NAME).exists()


def test_cli_predict_and_evaluate_threshold_auto(calibrated_dir, calibrated, plain_dir, dev, capsys):
    argv = ["predict", SENTENCES[0], "--labels", ",".join(LABELS), "--format", "jsonl", "--threshold", "auto"]
    assert main([*argv, "--model", str(calibrated_dir)]) == 0
    got = json.loads(capsys.readouterr().out)["entities"]
    assert got == calibrated.predict_entities(SENTENCES[0], LABELS, threshold="auto")
    assert main([*argv, "--model", str(plain_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("anyner: error: --threshold auto needs") and NOT_CALIBRATED in err
    assert "pass a number" in err

    assert main(["evaluate", "--model", str(calibrated_dir), "--data", str(dev), "--threshold", "auto"]) == 0
    out = capsys.readouterr().out
    f1 = evaluate_folder(calibrated, dev, threshold="auto").scores.f1
    assert "tiny-dev" in out and f"{f1:.1f}" in out
    assert main(["evaluate", "--model", str(plain_dir), "--data", str(dev), "--threshold", "auto"]) == 2
    assert NOT_CALIBRATED in capsys.readouterr().err


def test_cli_annotate_threshold_auto(calibrated_dir, calibrated, plain_dir, tmp_path, capsys):
    texts = tmp_path / "in.jsonl"
    texts.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(SENTENCES[:3])))
    argv = ["annotate", str(texts), "--labels", ",".join(LABELS), "--threshold", "auto", "--no-progress"]
    assert main([*argv, "--model", str(calibrated_dir), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    rows = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.jsonl")) for line in f.open()]
    got = [r["entities"] for r in sorted(rows, key=lambda r: r["id"])]
    want = calibrated.predict_batch(SENTENCES[:3], LABELS, threshold="auto")  # batched, as annotate runs
    assert [[(e["start"], e["end"], e["label"]) for e in row] for row in got] == [
        [(e.start, e.end, e.label) for e in row] for row in want
    ]
    assert got[0] and all(
        abs(a["score"] - b.score) < 1e-5
        for row, ref in zip(got, want, strict=True)
        for a, b in zip(row, ref, strict=True)
    )
    assert main([*argv, "--model", str(plain_dir), "--out", str(tmp_path / "out2")]) == 2
    assert NOT_CALIBRATED in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_cli_threshold_values_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "x", "--labels", "a", "--threshold", "high"])
    assert info.value.code == 2 and "invalid threshold value: 'high'" in capsys.readouterr().err
    for command in ("predict", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "or auto: each label's threshold from the model's calibration.json" in text, command
        assert "--threshold auto" in text, command
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    text = capsys.readouterr().out
    assert "--label-counts" in text and "--bands" in text and "calibration.json" in text


# ---------------------------------------------------------------------- HTTP


def client_for(model):
    pytest.importorskip("fastapi", reason="the server needs FastAPI")
    with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
        warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
        from fastapi.testclient import TestClient

    from anyner.serve import create_app

    return TestClient(create_app(model, max_wait_ms=0))


def test_http_threshold_auto(calibrated, plain):
    body = {"texts": SENTENCES[:3], "labels": LABELS, "threshold": "auto"}
    with client_for(calibrated) as client:
        assert client.get("/v1/model").json()["calibrated"] is True
        r = client.post("/v1/entities", json=body)
        assert r.status_code == 200, r.text
        want = calibrated.batch_predict_entities(SENTENCES[:3], LABELS, threshold="auto")
        for got, expected in zip([x["entities"] for x in r.json()["results"]], want, strict=True):
            same_entities(got, expected)
        one = client.post("/v1/entities", json={"text": SENTENCES[0], "labels": LABELS, "threshold": "auto"})
        assert one.status_code == 200
        same_entities(one.json()["entities"], want[0])
        # one label set per text; no text at all
        per_text = {"texts": SENTENCES[:2], "labels": [["person"], ["city"]], "threshold": "auto"}
        assert client.post("/v1/entities", json=per_text).status_code == 200
        assert client.post("/v1/entities", json={**body, "texts": []}).json() == {"results": []}
        assert client.post("/v1/entities", json={**body, "threshold": "Auto"}).status_code == 422
        schema = client.get("/openapi.json").json()
    assert '"auto"' in json.dumps(
        schema["components"]["schemas"]["TextRequest"]["properties"]["threshold"]["anyOf"]
    )
    with client_for(plain) as client:
        assert client.get("/v1/model").json()["calibrated"] is False
        r = client.post("/v1/entities", json=body)
        assert r.status_code == 422
        assert NOT_CALIBRATED in r.text and "pass a number" in r.text
        assert client.post("/v1/entities", json={**body, "threshold": 0.5}).status_code == 200
        schema = client.get("/openapi.json").json()
    assert "auto" not in json.dumps(
        schema["components"]["schemas"]["TextRequest"]["properties"]["threshold"]["anyOf"]
    )


# ---------------------------------------------------------------------- spaCy


def test_spacy_threshold_auto(calibrated_dir, calibrated, plain_dir):
    spacy = pytest.importorskip("spacy", reason='spaCy is not installed (pip install "anyner[spacy]")')
    import anyner.spacy  # noqa: F401  (registers the factory)

    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": LABELS, "model": str(calibrated_dir), "threshold": "auto"})
    doc = nlp(SENTENCES[0])
    want = calibrated.predict(SENTENCES[0], LABELS, threshold="auto")
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
        (e.start, e.end, e.label) for e in want
    ]
    with pytest.raises(ValueError, match=NOT_CALIBRATED):
        spacy.blank("en").add_pipe(
            "anyner", config={"labels": LABELS, "model": str(plain_dir), "threshold": "auto"}
        )


# ---------------------------------------------------------------------- relations


def test_relations_take_auto_for_entities(relex_dot):
    model = AnyNER.from_pretrained(relex_dot)
    text, labels, relations = SENTENCES[0], ["person", "organization", "city"], ["founded", "located in"]
    with pytest.raises(ValueError, match=NOT_CALIBRATED):
        model.predict_relations(text, labels, relations, threshold="auto")
    with pytest.raises(ValueError, match=NOT_CALIBRATED):
        model.batch_predict_relations([], labels, relations, threshold="auto")  # checked with no text too
    model.calibration = Calibration(bands=(Band(0, 0.3), Band(None, 0.6)), label_counts={"person": 5})
    want = model.calibration.thresholds(labels)
    # the relation and adjacency thresholds default to 0.5, as with a dict
    assert model.predict_relations(text, labels, relations, threshold="auto") == model.predict_relations(
        text, labels, relations, threshold=want
    )
    got = model.batch_predict_relations(
        SENTENCES[:2], labels, relations, threshold="auto", relation_threshold=0.2
    )
    assert got == model.batch_predict_relations(
        SENTENCES[:2], labels, relations, threshold=want, relation_threshold=0.2
    )


# ---------------------------------------------------------------------- training


def test_training_from_a_calibrated_model_drops_its_calibration(tmp_path, calibrated_dir, tiny_bert_dir):
    """The weights change: the thresholds fitted for the old ones are not saved with the new model."""
    import dataclasses

    from anyner.train import Trainer
    from tests.conftest import tiny_train_config

    config = tiny_train_config(tmp_path, tiny_bert_dir, steps=1)
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, init_from=str(calibrated_dir))
    )
    trainer = Trainer(config, progress=False)
    assert trainer.model.calibration is None
    assert not (trainer.model.save_pretrained(tmp_path / "saved") / CALIBRATION_NAME).exists()
