"""The ``anyner`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import closing, nullcontext
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from anyner.deploy import API_KEY_ENV  # standard library only: cheap at start-up
from anyner.model_types import RELEX as RELEX_TYPE  # no anyner import: cheap at start-up
from anyner.validate import positive_int, threshold

EXAMPLES_PREDICT = """\
examples:
  anyner predict "Bill Gates founded Microsoft on April 4, 1975." --labels person,organization,date
  anyner predict --file notes.txt --labels "drug,dose,side effect" --format jsonl > found.jsonl
  cat texts.jsonl | anyner predict --labels person,city --format json       # JSONL with a "text" field
  anyner predict -f big.txt -l person --format jsonl | head -n 3            # stops early, quietly
  anyner predict -f big.txt -l person --format jsonl --quiet > found.jsonl  # no progress bar
  anyner predict "..." --labels person --model urchade/gliner_small-v2.1     # a Hub id or a local folder
  anyner predict -f notes.txt --labels drug,dose --model ./my-model --threshold auto  # calibrated thresholds
  anyner predict "Marie Curie was born in Warsaw." --labels person,city \\
      --relations "place of birth,employer"          # entities and the relations between them

input: TEXT arguments, else --file, else stdin. Each line is one text; a line that is a
JSON object takes its "text" field, and its fields named by --keep (default "id") are copied
to that text's output record, so results can be joined back. An empty input gives an empty
result (e.g. [] for json) without loading the model, and a warning on stderr. Texts are read --batch-size at a time and each batch's
results are written (and flushed) as soon as they are found, so long inputs stream; only
--format html waits for the whole input. A progress bar (texts, words/s) goes to stderr
when reading --file, or stdin with stderr on a terminal; --no-progress or --quiet hide it.

relations: --relations also finds the relations between the entities of each text. It needs the
torch backend and a model that finds relations: the built-in model (its relation model loads on
the first such call) or a GLiNER span relex checkpoint folder or Hub id (such as a folder saved
from gliner's UniEncoderSpanRelexGLiNER). Relation names must differ from the labels; --nested
and --multi-label apply to the entities as without relations. The table lists "head [label] ->
relation -> tail [label] score" under each text's entities; json, jsonl and html records gain
"relations": head and tail (start, end, text, type, and entity_idx, the index in that record's
"entities"), relation and score, as gliner's relation models give them.

thresholds: --threshold is one number for every label (default 0.5), or auto: each label's
threshold from the model's calibration.json, fitted per label-frequency band on dev sets by
`anyner calibrate` (a model without one is refused: exit 2).
"""

EXAMPLES_EVALUATE = """\
examples:
  anyner evaluate --model ./my-model --suite ood                      # the paper's zero-shot benchmark
  anyner evaluate --model ./my-model --suite ood --limit 50 --json ood.json
  anyner evaluate --model urchade/gliner_small-v2.1 --data ../shared/data/benchmark/ood/CrossNER_AI
  anyner evaluate --data ../shared/data/benchmark/conll2003 --split dev --words gliner
  anyner evaluate --model ./my-model --suite ood --threshold auto     # the model's calibrated thresholds

A benchmark folder holds <split>.json ([{"sentence", "entities": [{"name", "type", "pos"}]}],
character offsets) and labels.json; a folder of such folders expands to them. Protocol: prompt
with the lowercased names in labels.json, threshold 0.5, flat decoding, exact match on span and
lowercased type; scores are micro P/R/F1 in percent. --threshold auto replaces 0.5 by each label's
threshold from the model's calibration.json (see `anyner calibrate`). --suite ood is ../shared/data/benchmark/ood
beside the repository, or under $ANYNER_SHARED; it also prints the paper's figures beside ours.

relations (a relation-extraction model):
  anyner evaluate --model ./my-relex --relation-data ../shared/data/relations/maintie --limit 200
  anyner evaluate --model ./my-relex --relation-data data/fewrel.json --relations "part of,located in"
--relation-data reads any relation set anyner's readers know (MaintIE, Re-DocRED, FewRel, CDR,
re3d, KnowledgeNet, SemEval-2010 Task 8), prompts each record with the set's entity types and
relation names (or --relations: then only those are scored, e.g. names held out of training),
and prints micro P/R/F1 of (head span, tail span, relation) triples ("boundaries") and of the
same with the entity types right ("strict").
"""

EXAMPLES_CALIBRATE = """\
examples:
  anyner calibrate runs/my-run/model --dev runs/dev-suite --label-counts label_counts.json
  anyner calibrate ./my-model --dev dev/CrossNER_AI dev/mit-movie --label-counts counts.json --limit 200
  anyner calibrate ./my-model --dev dev/ --label-counts counts.json --bands 0,10,100,1000
  anyner predict "..." --labels person,drug --model ./my-model --threshold auto   # then use it

Fits one threshold per band of label frequency in the training data (--label-counts: a JSON
object label -> gold spans of it in the training data; a label not in it counts 0). --bands gives
the bands' upper counts (default 0,100,1000,10000; a last band takes any count). Each dev set (a
benchmark folder as `anyner evaluate` reads it, or a folder of them) is scored once; then each
band's threshold is chosen among 0.05, 0.10, ..., 0.95 to maximize micro F1 over all dev
sentences (coordinate ascent, 2 passes, starting from 0.5: never below F1 at 0.5). A band without
a dev label keeps 0.5. Writes MODEL_DIR/calibration.json (atomically) and prints F1 at 0.5 and
calibrated per dev set, on average and micro over all. `--threshold auto` (predict, evaluate),
threshold="auto" (Python, spaCy) and "threshold": "auto" (HTTP) then use it.
"""

EXAMPLES_TRAIN = """\
examples:
  anyner train configs/builtin-minilm.toml                 # train as the config says
  anyner train configs/builtin-minilm.toml --resume        # continue from the latest checkpoint
  anyner train my.toml --resume --until-step 2000          # stop at step 2000 (a time-boxed session)

The config is TOML with tables [model], [[data]] (one per corpus: path, weight, label_map,
max_records, keep_empty), [train] (steps, batch_size, lr_encoder, lr_others, warmup_ratio,
schedule, neg_ratio, max_types, drop_labels, loss, reduction, ema_decay, ...), [output]
(dir, save_every, keep, log_every) and [eval] (data, every, limit). Relative paths are
read from the config's folder. Checkpoints are written atomically to OUTPUT/checkpoints,
metrics to OUTPUT/metrics.jsonl, the final model to OUTPUT/model, and at each checkpoint the
curves of loss, learning rates and eval F1 to OUTPUT/curves.png (with matplotlib:
pip install 'anyner[plot]'; `anyner plot OUTPUT` redraws them).
"""

EXAMPLES_SERVE = """\
examples:
  anyner serve                                   # the built-in model on http://127.0.0.1:8000
  anyner serve --model ./my-model --port 8080 --batch-size 16
  curl -s localhost:8000/v1/entities -H 'Content-Type: application/json' \\
       -d '{"text": "Bill Gates founded Microsoft.", "labels": ["person", "organization"]}'

  anyner serve --host 0.0.0.0 --api-key-file key.txt --workers 2
  curl -s localhost:8000/v1/entities -H "Authorization: Bearer $(cat key.txt)" \\
       -H 'Content-Type: application/json' -d '{"text": "Ada Lovelace", "labels": ["person"]}'

Endpoints: POST /v1/entities ({"text"} or {"texts"}, "labels", "threshold", "flat",
"multi_label", "html"), GET /v1/model, GET /health, GET /metrics (Prometheus), the OpenAPI
docs at /docs, and a page to try the model at /. Requests beyond a limit get 413 (body) or
422; a full queue 503. Each answer carries X-Request-ID (the client's, or a new one), which
the log lines of that request show.

API key: with --api-key-file (or the ANYNER_API_KEY environment variable), every request
needs `Authorization: Bearer KEY` or `X-API-Key: KEY`, else 401: /v1/* and /metrics. These
stay open: / (the page), /app.js, /health, /docs, /redoc, /openapi.json and /docs-assets/.
The key is never logged. Without a key there is no authentication: the server binds
127.0.0.1 unless --host says otherwise.
SIGTERM or Ctrl-C: the server stops taking connections, answers the queued requests (for up
to --shutdown-timeout seconds), then exits.
Needs FastAPI, uvicorn and prometheus_client: pip install 'anyner[serve]'.
"""

EXAMPLES_EXPORT = """\
examples:
  anyner export onnx --model ./my-model --out ./my-model-onnx                  # fp32 model.onnx
  anyner export onnx --model ./my-model --out ./my-model-onnx --quantize int8  # also model_int8.onnx

The output folder holds the model as save_pretrained writes it (gliner_config.json, weights,
tokenizer) plus the ONNX file(s), so it loads with either backend:
  AnyNER.from_pretrained("./my-model-onnx", backend="onnx")                        # fp32
  AnyNER.from_pretrained("./my-model-onnx", backend="onnx", onnx_file="model_int8.onnx")
Each file is checked against the torch model; onnx_export.json records the figures.
Needs the onnx and onnxruntime packages: pip install 'anyner[onnx]'.
"""

EXAMPLES_ANNOTATE = """\
examples:
  anyner annotate corpus/*.jsonl --labels person,organization --out annotated/
  anyner annotate notes.txt --labels drug,dose --out out/ --workers 2 --format parquet
  anyner annotate data/*.parquet --labels person --out out/ --text-field body --id-field doc_id
  anyner annotate corpus/*.jsonl --labels person --out out/ --ray local            # a local Ray cluster
  anyner annotate s3-mount/*.jsonl --labels person --out shared/out --ray auto     # a running cluster

Input: .jsonl (a JSON object a line, text in --text-field), .parquet (a column), .txt (a text a
line). Output: DIR/part-FFFFF-SSSSSS.jsonl or .parquet, one record per input record: id (the
--id-field value, else "<file>:<line>"), source, line, entities (start, end, text, label,
score); DIR/manifest.json counts records, entities and errors per shard.
Resumable: after a kill, run the same command again; finished shards are kept, the rest done,
every record written once. A bad line is reported with its file and line and skipped
(--on-error fail stops instead). Parquet and --ray need the scale extra: pip install 'anyner[scale]'.
"""

EXAMPLES_PLOT = """\
examples:
  anyner plot runs/my-run                        # writes runs/my-run/curves.png
  anyner plot runs/my-run --out my-run.png

anyner train writes curves.png itself at each checkpoint when matplotlib is installed;
this command redraws it, also while the run goes on. Needs matplotlib: pip install 'anyner[plot]'.
"""

EXAMPLES_PUSH = """\
examples:
  anyner push runs/my-run/model you/my-ner-model                  # HF_TOKEN or `huggingface-cli login`
  anyner push ./my-model you/my-ner-model --private --revision v1

The token comes from HF_TOKEN or from `huggingface-cli login`; it needs write access.
Needs torch to write the weights: pip install 'anyner[torch]'.
"""

# The one table of exit statuses: printed at the end of every --help, followed by every
# subcommand (main maps the exceptions to it; nothing else returns a status of its own).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS = f"""\
Exit status (the same for every command):
  {EXIT_OK}    success, also when the reader of the output stops early (| head)
  {EXIT_FAILED}    the model cannot be loaded (no such folder or Hub id, not a model folder,
       damaged or unsupported files, an optional package missing), or the work failed
       (an export that does not check out, an error writing the output)
  {EXIT_USAGE}    bad arguments or input: an option's value, or a text, data or training
       config file that is missing or malformed (for train also what the config names:
       its data, encoder and init_from, and a checkpoint that --resume cannot use)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
An error is one line on stderr, "anyner: error: ..." (after the usage line when
the command line itself is wrong).
"""


class Failed(Exception):
    """The work cannot be done with valid arguments: the model cannot be loaded, an export
    failed, an optional package is missing. ``main`` prints it and exits ``EXIT_FAILED``."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anyner",
        description="Open-type named entity recognition: find entities of the types you name.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from anyner import __version__

    p.add_argument("--version", action="version", version=f"anyner {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    pr = sub.add_parser(
        "predict",
        help="find entities in texts",
        description="Find entities of the given labels in texts and print them.",
        epilog=EXAMPLES_PREDICT + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("texts", nargs="*", metavar="TEXT", help="texts to read (default: --file or stdin)")
    pr.add_argument(
        "-l", "--labels", required=True, help="comma-separated labels, e.g. person,organization,date"
    )
    pr.add_argument(
        "-f", "--file", type=Path, help="read texts from this file, one per line (plain or JSONL)"
    )
    pr.add_argument("-m", "--model", help="model folder or Hub id (default: the built-in model)")
    _add_backend(pr)
    pr.add_argument("-t", "--threshold", type=_threshold_value, default=0.5, metavar="X", help=THRESHOLD_HELP)
    pr.add_argument(
        "--format",
        choices=("table", "json", "jsonl", "html"),
        default="table",
        help="output format (default table)",
    )
    pr.add_argument(
        "--keep", default="id", metavar="FIELDS",
        help="comma-separated fields of JSON-line input copied to each output record (default: id)",
    )  # fmt: skip
    pr.add_argument("--nested", action="store_true", help="allow entities inside entities")
    pr.add_argument("--multi-label", action="store_true", help="let one span carry several labels")
    pr.add_argument(
        "-r", "--relations", metavar="RELATIONS",
        help='comma-separated relations to find between the entities, e.g. "works for,located in" '
        "(needs a relation-extraction model; see below)",
    )  # fmt: skip
    pr.add_argument(
        "--relation-threshold", type=float, metavar="X",
        help="minimum relation score in [0, 1], with --relations (default: --threshold)",
    )  # fmt: skip
    pr.add_argument(
        "--adjacency-threshold", type=float, metavar="X",
        help="with --relations: the score in [0, 1] above which the model's adjacency layer pairs two "
        "entities before it scores their relations (default: --threshold)",
    )  # fmt: skip
    pr.add_argument(
        "--batch-size", type=int, default=8, help="texts per model batch, written as it is done (default 8)"
    )
    pr.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    pr.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="nothing on stderr but errors: no progress bar, no warnings",
    )
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser(
        "evaluate",
        help="score a model on NER benchmark folders",
        description="Exact-match micro precision, recall and F1 of a model on benchmark folders.",
        epilog=EXAMPLES_EVALUATE + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("-m", "--model", help="model folder or Hub id (default: the built-in model)")
    _add_backend(ev)
    ev.add_argument(
        "-d", "--data", nargs="+", type=Path, default=[], metavar="PATH",
        help="benchmark folders, or folders holding them",
    )  # fmt: skip
    ev.add_argument("--suite", choices=("ood",), help="a named benchmark suite from the shared data folder")
    ev.add_argument("--split", default="test", help="split file to read, <split>.json (default test)")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N sentences of each dataset")
    ev.add_argument("-t", "--threshold", type=_threshold_value, default=0.5, metavar="X", help=THRESHOLD_HELP)
    ev.add_argument("--nested", action="store_true", help="allow entities inside entities (default flat)")
    ev.add_argument(
        "--words", choices=("whitespace", "gliner"), default="whitespace",
        help="whitespace: the sentence split on spaces, as the paper's evaluation read it (default); "
        "gliner: the raw sentence, split by the model",
    )  # fmt: skip
    ev.add_argument("--batch-size", type=int, default=8, help="texts per model batch (default 8)")
    ev.add_argument("--json", type=Path, metavar="OUT", help="also write the scores to this JSON file")
    ev.add_argument(
        "--plot", type=Path, metavar="PNG",
        help="also draw per-dataset F1 bars, beside the paper's, to this PNG (pip install 'anyner[plot]')",
    )  # fmt: skip
    ev.add_argument(
        "--relation-data", nargs="+", type=Path, default=[], metavar="PATH",
        help="relation sets (files or set folders) to score a relation-extraction model on",
    )  # fmt: skip
    ev.add_argument(
        "-r", "--relations", metavar="RELATIONS",
        help="with --relation-data: comma-separated relation names to prompt with and score (default: all)",
    )  # fmt: skip
    ev.add_argument(
        "--relation-threshold", type=float, metavar="X",
        help="with --relation-data: minimum relation score in [0, 1] (default: --threshold)",
    )  # fmt: skip
    ev.add_argument(
        "--adjacency-threshold", type=float, metavar="X",
        help="with --relation-data: the adjacency layer's pair threshold in [0, 1] (default: --threshold)",
    )  # fmt: skip
    ev.set_defaults(func=cmd_evaluate)

    ca = sub.add_parser(
        "calibrate",
        help="fit thresholds per label-frequency band on dev sets (for --threshold auto)",
        description="Fit a model's thresholds per label-frequency band on dev sets and write "
        "MODEL_DIR/calibration.json, which --threshold auto reads.",
        epilog=EXAMPLES_CALIBRATE + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ca.add_argument(
        "model_dir", type=Path, metavar="MODEL_DIR", help="the model's folder; calibration.json goes there"
    )
    ca.add_argument(
        "--dev", nargs="+", type=Path, required=True, metavar="FOLDER",
        help="dev benchmark folders (<split>.json and labels.json), or folders holding them",
    )  # fmt: skip
    ca.add_argument(
        "--label-counts", type=Path, required=True, metavar="FILE",
        help="JSON object label -> count of gold spans of that label in the training data",
    )  # fmt: skip
    ca.add_argument("--limit", type=int, metavar="N", help="only the first N sentences of each dev set")
    ca.add_argument(
        "--bands", metavar="COUNTS",
        help="comma-separated upper label counts of the bands, increasing (default 0,100,1000,10000; "
        "a last band takes any count)",
    )  # fmt: skip
    ca.add_argument("--split", default="test", help="split file to read, <split>.json (default test)")
    ca.add_argument(
        "--words", choices=("whitespace", "gliner"), default="whitespace",
        help="how the sentences are read, as in anyner evaluate (default whitespace)",
    )  # fmt: skip
    ca.add_argument("--batch-size", type=int, default=8, help="texts per model batch (default 8)")
    _add_backend(ca)
    ca.set_defaults(func=cmd_calibrate)

    tr = sub.add_parser(
        "train",
        help="train a model from a config file",
        description="Train a GLiNER span model: the paper's recipe, resumable checkpoints, a metrics log.",
        epilog=EXAMPLES_TRAIN + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("config", type=Path, help="TOML training config")
    tr.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in the output folder"
    )
    tr.add_argument("--until-step", type=int, metavar="N", help="stop after step N (with a checkpoint)")
    tr.set_defaults(func=cmd_train)

    an = sub.add_parser(
        "annotate",
        help="annotate corpora: many files, several processes or a Ray cluster, resumable",
        description="Find entities in every record of JSONL, Parquet or text files and write them in shards.",
        epilog=EXAMPLES_ANNOTATE + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    an.add_argument("inputs", nargs="+", metavar="INPUT", help="files or globs (quote globs for **)")
    an.add_argument("-l", "--labels", required=True, help="comma-separated labels")
    an.add_argument("-o", "--out", required=True, type=Path, help="output folder (created; reused to resume)")
    an.add_argument("-m", "--model", help="model folder or Hub id (default: the built-in model)")
    _add_backend(an)
    an.add_argument(
        "--format", choices=("jsonl", "parquet"), default="jsonl", help="output format (default jsonl)"
    )
    an.add_argument("--workers", type=int, help="processes, or Ray actors (default: one per core)")
    an.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    an.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="run on Ray: 'local' (the default when no address follows) starts one here; an address joins a cluster",
    )  # fmt: skip
    an.add_argument(
        "--text-field", default="text", help="JSONL field or Parquet column of the text (default text)"
    )
    an.add_argument("--id-field", default="id", help="field or column copied as the record's id (default id)")
    an.add_argument("-t", "--threshold", type=_threshold_value, default=0.5, metavar="X", help=THRESHOLD_HELP)
    an.add_argument("--nested", action="store_true", help="allow entities inside entities")
    an.add_argument("--batch-size", type=int, default=8, help="texts per model batch (default 8)")
    an.add_argument("--shard-size", type=int, default=1000, help="records per output shard (default 1000)")
    an.add_argument(
        "--on-error", choices=("skip", "fail"), default="skip", help="a bad record: skip it (default) or stop"
    )
    an.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    an.set_defaults(func=cmd_annotate)

    sv = sub.add_parser(
        "serve",
        help="serve a model over HTTP (JSON API and a web page)",
        description="Serve a model with FastAPI and uvicorn: a JSON API, its OpenAPI docs and a web page.",
        epilog=EXAMPLES_SERVE + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sv.add_argument("-m", "--model", help="model folder or Hub id (default: the built-in model)")
    _add_backend(sv)
    sv.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)"
    )
    sv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    sv.add_argument("--batch-size", type=int, default=8, help="most texts per model call (default 8)")
    sv.add_argument(
        "--queue-size", type=int, default=64, help="most requests waiting; more get 503 (default 64)"
    )
    sv.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long to wait to fill a batch (default 5 ms)"
    )
    for flag, default, what in (
        ("--max-text-chars", 10_000, "characters in one text"),
        ("--max-texts", 64, "texts in one request"),
        ("--max-labels", 50, "labels in one request"),
        ("--max-label-chars", 200, "characters in one label or description"),
        ("--max-body-bytes", 1_048_576, "bytes in one request body"),
    ):
        sv.add_argument(flag, type=int, default=default, metavar="N", help=f"most {what} (default {default})")
    sv.add_argument(
        "--api-key-file", metavar="PATH",
        help=f"a file holding the API key that requests must send (or set {API_KEY_ENV}); see below",
    )  # fmt: skip
    sv.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN", dest="cors_origins",
        help="let pages of this origin (scheme://host[:port], or *) call the API from a browser; "
        "repeat for several (default: none)",
    )  # fmt: skip
    sv.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="worker processes, each with its own model and queue (default 1)",
    )  # fmt: skip
    sv.add_argument(
        "--threads", type=int, metavar="T",
        help="CPU threads of each worker's model (default: all cores with one worker, "
        "cores / N with --workers N)",
    )  # fmt: skip
    sv.add_argument(
        "--shutdown-timeout", type=float, default=30.0, metavar="S",
        help="on SIGTERM, how long to wait for the requests under way and queued (default 30 s)",
    )  # fmt: skip
    sv.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    sv.set_defaults(func=cmd_serve)

    ex = sub.add_parser(
        "export",
        help="export a model for another runtime (ONNX)",
        description="Export a model for another runtime.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex_sub = ex.add_subparsers(dest="format", metavar="FORMAT")
    ex_sub.required = True
    eo = ex_sub.add_parser(
        "onnx",
        help="ONNX, run with ONNX Runtime",
        description="Export a model to ONNX (optionally also int8-quantized) for ONNX Runtime.",
        epilog=EXAMPLES_EXPORT + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eo.add_argument("-m", "--model", required=True, help="model folder or Hub id to export")
    eo.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    eo.add_argument(
        "--quantize", choices=("int8",), help="also write model_int8.onnx (dynamic int8 quantization)"
    )
    eo.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    eo.set_defaults(func=cmd_export)

    pl = sub.add_parser(
        "plot",
        help="draw a training run's curves (loss, learning rates, eval F1)",
        description="Draw a training run's curves from its metrics.jsonl: loss, learning rates, eval F1.",
        epilog=EXAMPLES_PLOT + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pl.add_argument(
        "run", type=Path, metavar="RUN_DIR", help="the run's output folder (or its metrics.jsonl)"
    )
    pl.add_argument(
        "-o", "--out", type=Path, metavar="PNG", help="the picture to write (default RUN_DIR/curves.png)"
    )
    pl.set_defaults(func=cmd_plot)

    pu = sub.add_parser(
        "push",
        help="upload a model to the Hugging Face Hub",
        description="Upload a model to the Hugging Face Hub: its config, weights, tokenizer and a model card.",
        epilog=EXAMPLES_PUSH + "\n" + EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pu.add_argument("model", help="model folder (or Hub id) to upload; 'builtin' for the built-in model")
    pu.add_argument("repo_id", help="Hub repository, e.g. you/my-ner-model (created if it does not exist)")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    pu.add_argument(
        "--revision", metavar="BRANCH", help="branch to commit to (default main; created if needed)"
    )
    pu.add_argument("--message", metavar="TEXT", help="commit message")
    pu.add_argument(
        "--card", type=Path, metavar="FILE",
        help="Markdown file to upload as the model card, README.md (default: one written for the model)",
    )  # fmt: skip
    pu.set_defaults(func=cmd_push)
    return p


THRESHOLD_HELP = (
    "minimum score in [0, 1] (default 0.5), or auto: each label's threshold from the model's "
    "calibration.json (written by `anyner calibrate`)"
)


def _threshold_value(text: str) -> float | str:
    """``--threshold``: ``auto``, or a number (checked in [0, 1] later, with the flag's name)."""
    if text.strip().lower() == "auto":
        return "auto"
    return float(text)


_threshold_value.__name__ = "threshold"  # argparse's words: "invalid threshold value: 'x'"


def _check_threshold(value: float | str) -> None:
    """``--threshold`` before the model loads: ``auto`` or a number in [0, 1]."""
    if value != "auto":
        threshold(value, "--threshold")


def _check_auto(model: Any, value: float | str) -> None:
    """Refuse (ValueError: exit 2) ``--threshold auto`` for a model without calibration, before any output."""
    if value == "auto" and getattr(model, "calibration", None) is None:
        from anyner.calibration import no_calibration_message

        raise ValueError(no_calibration_message("--threshold auto"))


def build_parser() -> argparse.ArgumentParser:
    """The ``anyner`` argument parser, subcommands included (the documentation's CLI reference
    is its help text)."""
    return _parser()


def _labels(arg: str) -> list[str]:
    labels = [x.strip() for x in arg.split(",") if x.strip()]
    if not labels:
        raise ValueError("--labels is empty: give comma-separated labels, e.g. --labels person,organization")
    return labels


RELEX_MODEL_HINT = (
    "give --model a GLiNER relation-extraction checkpoint, a folder or Hub id (such as a folder saved "
    "from gliner's UniEncoderSpanRelexGLiNER)"
)


def _relation_options(args: argparse.Namespace, labels: list[str]) -> list[str] | None:
    """The relations of ``--relations`` (None without it), checked with their thresholds, the
    labels, the model and the backend before any model loads."""
    if args.relations is None:
        given = {
            "--relation-threshold": args.relation_threshold,
            "--adjacency-threshold": args.adjacency_threshold,
        }
        for flag, value in given.items():
            if value is not None:
                raise ValueError(f'{flag} applies to relations only: give --relations too, e.g. "works for"')
        return None
    relations = [x.strip() for x in args.relations.split(",") if x.strip()]
    if not relations:
        raise ValueError(
            '--relations is empty: give comma-separated relations, e.g. --relations "works for,located in"'
        )
    clash = [r for r in dict.fromkeys(relations) if r in labels]
    if clash:
        raise ValueError(
            f"--relations and --labels both name {', '.join(map(repr, clash))}: a relation must be named "
            "differently from the labels (e.g. 'has location' beside the label 'location')"
        )
    if args.relation_threshold is not None:
        threshold(args.relation_threshold, "--relation-threshold")
    if args.adjacency_threshold is not None:
        threshold(args.adjacency_threshold, "--adjacency-threshold")
    if args.backend == "onnx":
        raise ValueError("--relations runs on the torch backend only: leave out --backend onnx")
    return relations


def _check_relation_model(model: Any, name: str, labels: list[str], relations: list[str]) -> None:
    """Refuse (ValueError: exit 2) a loaded model that cannot find relations, before any output."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    said = getattr(model, "extracts_relations", None)
    if getattr(model, "relation_folder", None) is not None and said is False:
        raise ValueError(
            "--relations: this model's relation model runs on the torch backend only "
            "(pip install 'anyner[torch]')"
        )
    if not (said if isinstance(said, bool) else model_type == RELEX_TYPE):
        raise ValueError(
            f"--relations needs a relation-extraction model, and {name} finds entities only "
            f"(a {model_type} model): {RELEX_MODEL_HINT}"
        )
    try:  # no text: checks the relations against the model's prompt, and the backend
        model.batch_predict_relations([], labels, relations)
    except NotImplementedError as e:
        raise ValueError(f"--relations cannot run on this model: {_one_line(e)}") from e


class _Text(str):
    """A text read from a JSON line, carrying the record's fields to pass through (``--keep``)."""

    fields: dict[str, Any]


def _keep_fields(arg: str, relations: bool = False) -> list[str]:
    names = [x.strip() for x in arg.split(",") if x.strip()]
    for bad in ("text", "entities", *(("relations",) if relations else ())):
        if bad in names:
            raise ValueError(f"--keep cannot name {bad!r}: the output writes that field itself")
    return names


def _input_name(args: argparse.Namespace) -> str:
    return str(args.file) if args.file else "<stdin>"


def _read_texts(args: argparse.Namespace) -> Iterator[str]:
    """The texts, read lazily: the TEXT arguments, else the lines of --file, else of stdin.

    A UTF-8 byte-order mark at the start of the input is not part of the first text. A JSON
    line's fields named by ``--keep`` (default ``id``) travel with its text to the output.
    """
    if args.texts:
        yield from args.texts
        return
    name = _input_name(args)
    keep = _keep_fields(getattr(args, "keep", "id") or "", getattr(args, "relations", None) is not None)
    if args.file is None:
        stream = sys.stdin  # read, never closed: it is not ours
    else:
        try:
            stream = args.file.open(encoding="utf-8-sig")  # -sig: a leading BOM is dropped
        except OSError as e:
            raise ValueError(f"cannot read {name}: {e.strerror or e}") from e
    n = 0
    try:
        for n, line in enumerate(stream, 1):
            line = line.rstrip("\r\n")
            if n == 1:
                line = line.removeprefix("\ufeff")  # stdin decodes as plain UTF-8: drop the BOM here
            if line.lstrip().startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{name}:{n}: not valid JSON: {e}") from e
                if not isinstance(record.get("text"), str):
                    raise ValueError(f"{name}:{n}: JSON line has no string field 'text'")
                text = _Text(record["text"])
                text.fields = {k: record[k] for k in keep if k in record}
                line = text
            yield line
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}:{n + 1}: not UTF-8 text ({e.reason})") from e
    finally:
        if stream is not sys.stdin:
            stream.close()


def _predict_stream(
    model: Any,
    texts: Iterable[str],
    labels: list[str],
    *,
    batch_size: int,
    progress: Any = None,
    relations: list[str] | None = None,
    **options: Any,
) -> Iterator[list[tuple]]:
    """Predict ``texts`` ``batch_size`` at a time, as they are read; yield each batch's (text, entities),
    or with ``relations`` its (text, entities, relations).

    A batch is read only when the previous one has been handed on, so the first results
    come out while later texts are still unread. ``progress`` (a tqdm bar, or None) is
    advanced by each batch, with the words per second read so far.
    """
    texts, words, start = iter(texts), 0, time.perf_counter()
    while batch := list(islice(texts, batch_size)):
        if relations is None:
            found = model.predict_batch(batch, labels, batch_size=batch_size, **options)
            results = list(zip(batch, found, strict=True))
        else:
            pairs = model.batch_predict_relations(batch, labels, relations, batch_size=batch_size, **options)
            results = [(text, ents, rels) for text, (ents, rels) in zip(batch, pairs, strict=True)]
        if progress is not None:
            words += sum(len(t.split()) for t in batch)
            rate = words / max(time.perf_counter() - start, 1e-9)
            progress.set_postfix_str(f"{rate:,.0f} words/s", refresh=False)
            progress.update(len(batch))
        yield results


def _write_results(
    out: IO[str], fmt: str, batches: Iterator[list[tuple]], numbered: bool, bar: Any = None
) -> None:
    """Write each batch in ``fmt`` as it comes and flush it (html: one page at the end).

    A batch holds (text, entities) or (text, entities, relations) items, as
    :func:`_predict_stream` yields them. ``bar``: a progress bar on the same terminal, cleared
    while a batch is written.
    """
    if fmt == "html":
        from anyner.render import render_page

        items = [item for batch in batches for item in batch]
        with_relations = any(len(item) == 3 for item in items)
        out.write(
            render_page(
                [(text, ents) for text, ents, *_ in items],
                relations=[item[2] for item in items] if with_relations else None,
            )
        )
        out.flush()
        return
    i = 0
    if fmt == "json":  # the array json.dump(..., indent=2) writes, an item at a time
        out.write("[")
    for batch in batches:
        _write_batch(out, fmt, batch, numbered, i, bar)
        i += len(batch)
    if fmt == "json":
        out.write("]\n" if i == 0 else "\n]\n")
        out.flush()


def _write_batch(out: IO[str], fmt: str, batch: list[tuple], numbered: bool, i: int, bar: Any) -> None:
    with bar.external_write_mode(file=out) if bar is not None else nullcontext():
        for text, ents, *found in batch:
            rels = found[0] if found else None
            fields = getattr(text, "fields", {})
            record = {**fields, "text": str(text), "entities": [e.to_dict() for e in ents]}
            if rels is not None:
                record["relations"] = [r.to_dict() for r in rels]
            if fmt == "json":
                # not textwrap.indent: it also breaks lines at U+2028, U+0085, ... inside the strings
                item = "  " + json.dumps(record, ensure_ascii=False, indent=2).replace("\n", "\n  ")
                out.write(("\n" if i == 0 else ",\n") + item)
            elif fmt == "jsonl":
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                if numbered:
                    named = "".join(
                        f" {k}={_printable(json.dumps(v, ensure_ascii=False))}" for k, v in fields.items()
                    )
                    out.write(f"# text {i + 1}{named}\n")
                if not ents:
                    out.write("(no entities)\n")
                shown = [(_printable(e.text), _printable(e.label), e) for e in ents]
                width = max((len(t) for t, _, _ in shown), default=0)
                for t, label, e in shown:
                    out.write(f"{t:<{width}}  {label:<20}  {e.score:.2f}  [{e.start}:{e.end}]\n")
                if rels is not None:
                    _write_relation_table(out, rels)
            i += 1
        out.flush()


def _write_relation_table(out: IO[str], rels: list) -> None:
    """The relations of one text, under its entities: ``head [label] -> relation -> tail [label]  score``."""
    if not rels:
        out.write("(no relations)\n")
        return
    rows = [
        (
            f"{_printable(r.head.text)} [{_printable(r.head.label)}]",
            _printable(r.label),
            f"{_printable(r.tail.text)} [{_printable(r.tail.label)}]",
            r.score,
        )
        for r in rels
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(3)]
    out.write("relations:\n")
    for head, label, tail, score in rows:
        out.write(f"  {head:<{widths[0]}}  -> {label:<{widths[1]}}  -> {tail:<{widths[2]}}  {score:.2f}\n")


def _printable(s: str) -> str:
    """``s`` for a terminal table: control characters (newlines, ESC, ...) escaped, not obeyed."""
    if s.isprintable():
        return s
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in s
    )


def _count_lines(path: Path) -> int | None:
    """Lines in a regular file (a quick byte count), for the progress bar's total; else None."""
    try:
        if not path.is_file():  # a pipe or a device: reading it here would consume it
            return None
        n, last = 0, b"\n"
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                n, last = n + chunk.count(b"\n"), chunk[-1:]
        return n + (last != b"\n")
    except OSError:
        return None


def _stdout_to_devnull() -> None:
    """After the reader closed the pipe (``| head``), point stdout at /dev/null, so that
    Python's last flush at exit fails silently instead of printing a BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass


def _one_line(e: BaseException | str) -> str:
    """An error as one line: its message (or its type, when it has none) with newlines folded."""
    text = str(e).strip() or (type(e).__name__ if isinstance(e, BaseException) else "")
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _os_message(e: OSError) -> str:
    """``x: No such file or directory`` for an OSError of the system; a worded one as it is."""
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return _one_line(e)


def _need(what: str, extra: str, *modules: str) -> None:
    """Fail (EXIT_FAILED) at once, before a model loads, when an optional package is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Failed(f"{what} needs {' and '.join(missing)}, not installed: pip install 'anyner[{extra}]'")


BACKEND_HELP = (
    "auto (default): torch where the torch extra is installed, else ONNX Runtime; torch; or onnx "
    "(a folder written by `anyner export onnx`, the built-in model included)"
)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help=BACKEND_HELP)


def load_model(name: str | None, backend: str = "auto", threads: int | None = None) -> Any:
    """The model of ``--model`` (None: the built-in one), for every subcommand that loads one.

    Every way a model cannot be loaded is one :class:`Failed`, so one exit status
    (``EXIT_FAILED``) and one line: no such folder or Hub id, or the Hub out of reach
    (OSError, FileNotFoundError), a folder that is not a model or holds damaged files
    (``anyner.checkpoint.CheckpointError``, a ValueError), a GLiNER variant anyner does not
    implement (NotImplementedError), an optional backend that is not installed (ImportError).
    The CLI checks its other arguments (``threads``) before, so any ValueError
    ``from_pretrained`` raises is about the model's files, not about an argument.
    """
    from anyner.pipeline import AnyNER

    try:
        return AnyNER.from_pretrained(name, backend=backend, threads=threads)
    except (OSError, NotImplementedError, ImportError, ValueError) as e:  # ValueError: CheckpointError
        raise Failed(f"cannot load the model: {_one_line(e)}") from e


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    # the arguments first, so that a bad one is reported at once, not after the model loads
    labels = _labels(args.labels)
    _check_threshold(args.threshold)
    relations = _relation_options(args, labels)
    positive_int(args.batch_size, "--batch-size")
    _keep_fields(args.keep, relations is not None)
    if args.file is not None and not args.texts and not args.file.exists():
        raise ValueError(f"cannot read {args.file}: no such file")
    show_progress = not (args.texts or args.quiet or args.no_progress) and (
        args.file is not None or sys.stderr.isatty()
    )
    with warnings.catch_warnings(), closing(_read_texts(args)) as texts:
        if args.quiet:
            warnings.simplefilter("ignore")
        head = list(islice(texts, 2))  # one text alone is printed without a "# text 1" header
        if not head:
            # An empty input gives the empty output of its format (a pipeline may meet one), but
            # is said on stderr: it is often a wrong file or a failed command before the pipe.
            if not args.quiet:
                print(f"anyner: warning: no text to read: {_input_name(args)} is empty", file=sys.stderr)
            _write_results(sys.stdout, args.format, iter(()), numbered=False)
            return EXIT_OK
        model = load_model(args.model, args.backend)
        _check_auto(model, args.threshold)
        options: dict[str, Any] = dict(
            threshold=args.threshold, flat=not args.nested, multi_label=args.multi_label
        )
        if relations is not None:
            _check_relation_model(model, args.model, labels, relations)
            options.update(
                relations=relations, relation_threshold=args.relation_threshold,
                adjacency_threshold=args.adjacency_threshold,
            )  # fmt: skip
        total = _count_lines(args.file) if show_progress and args.file is not None else None
        bar = tqdm(
            total=total, desc="anyner", unit="text", file=sys.stderr, disable=not show_progress,
            dynamic_ncols=True, mininterval=0.5,
        )  # fmt: skip
        with bar:
            batches = _predict_stream(
                model, chain(head, texts), labels, batch_size=args.batch_size,
                progress=bar if show_progress else None, **options,
            )  # fmt: skip
            try:
                shared_terminal = show_progress and sys.stdout.isatty() and sys.stderr.isatty()
                _write_results(
                    sys.stdout,
                    args.format,
                    batches,
                    numbered=len(head) > 1,
                    bar=bar if shared_terminal else None,
                )
            except BrokenPipeError:
                _stdout_to_devnull()
                return EXIT_OK
    return EXIT_OK


def cmd_annotate(args: argparse.Namespace) -> int:
    from anyner.annotate import AnnotateError, Settings, annotate

    labels = _labels(args.labels)
    _check_threshold(args.threshold)
    for name in ("batch_size", "shard_size", "workers", "threads"):
        if getattr(args, name) is not None:
            positive_int(getattr(args, name), "--" + name.replace("_", "-"))
    if args.format == "parquet" or any(str(x).endswith((".parquet", ".pq")) for x in args.inputs):
        _need("Parquet input or output", "scale", "pyarrow")
    if args.ray is not None:
        _need("anyner annotate --ray", "scale", "ray")
    settings = Settings(
        model=args.model or "builtin", labels=tuple(labels), threshold=args.threshold, flat=not args.nested,
        text_field=args.text_field, id_field=args.id_field, batch_size=args.batch_size,
        shard_size=args.shard_size, format=args.format, backend=args.backend,
    )  # fmt: skip
    if args.model is not None or args.threshold == "auto":
        # a model that cannot load (or has no calibration for --threshold auto) fails here, once,
        # before any worker
        _check_auto(load_model(args.model, args.backend), args.threshold)
    try:
        totals = annotate(
            args.inputs, settings, args.out, workers=args.workers, threads=args.threads, ray=args.ray,
            on_error=args.on_error, progress=not args.no_progress,
        )  # fmt: skip
    except AnnotateError as e:
        raise ValueError(str(e)) from e
    rate = totals["records"] / max(totals["seconds"], 1e-9)
    print(
        f"anyner: {totals['records']:,} records, {totals['entities']:,} entities, {totals['errors']:,} errors "
        f"in {totals['seconds']:.1f} s ({rate:,.1f} records/s) -> {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from anyner import evaluate

    if args.limit is not None:
        positive_int(args.limit, "--limit")
    _check_threshold(args.threshold)
    positive_int(args.batch_size, "--batch-size")
    if args.plot is not None:
        _need_plot("anyner evaluate --plot")
    if args.relation_data:
        return _evaluate_relations(args)
    for flag, value in (("--relations", args.relations), ("--relation-threshold", args.relation_threshold),
                        ("--adjacency-threshold", args.adjacency_threshold)):  # fmt: skip
        if value is not None:
            raise ValueError(f"{flag} applies to --relation-data only")
    paths = [*args.data, *([evaluate.suite_folder(args.suite)] if args.suite else [])]
    if not paths:
        raise ValueError("nothing to evaluate: give --data PATH [PATH ...] or --suite ood")
    folders = evaluate.benchmark_folders(paths, split=args.split)  # bad data fails before the model loads
    model = load_model(args.model, args.backend)
    _check_auto(model, args.threshold)
    try:
        suite = evaluate.evaluate_suite(
            model, folders, threshold=args.threshold, flat=not args.nested, limit=args.limit,
            batch_size=args.batch_size, words=args.words, split=args.split, progress=sys.stderr.isatty(),
        )  # fmt: skip
    except OSError as e:
        raise ValueError(f"cannot read the data: {_os_message(e)}") from e
    out = sys.stdout
    out.write(evaluate.format_table(suite))
    for part in (evaluate.format_comparison(suite), evaluate.format_notes(suite)):
        out.write("\n" + part if part else "")
    if args.limit is not None:
        out.write(f"\nscored on the first {args.limit} sentences of each dataset, not the full test sets\n")
    if args.json:
        text = json.dumps(suite.to_json(), indent=2) + "\n"
        try:
            args.json.write_text(text, encoding="utf-8")
        except OSError as e:
            raise Failed(f"cannot write {args.json}: {e.strerror or _one_line(e)}") from e
    if args.plot:
        from anyner.plot import plot_f1_bars

        try:
            plot_f1_bars(suite, args.plot, title=f"F1 of {args.model or 'the built-in model'} ({args.split})")
        except OSError as e:
            raise Failed(f"cannot write {args.plot}: {e.strerror or _one_line(e)}") from e
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _evaluate_relations(args: argparse.Namespace) -> int:
    """``anyner evaluate --relation-data``: relation P/R/F1 per set (see EXAMPLES_EVALUATE)."""
    from anyner.evaluate_relations import evaluate_relations, format_relation_table

    if args.data or args.suite or args.plot:
        raise ValueError("--relation-data is scored on its own: leave out --data, --suite and --plot")
    for value, flag in ((args.relation_threshold, "--relation-threshold"),
                        (args.adjacency_threshold, "--adjacency-threshold")):  # fmt: skip
        if value is not None:
            threshold(value, flag)
    relations = None
    if args.relations is not None:
        relations = [x.strip() for x in args.relations.split(",") if x.strip()]
        if not relations:
            raise ValueError('--relations is empty: give comma-separated names, e.g. "part of,located in"')
    for path in args.relation_data:
        if not path.exists():
            raise ValueError(f"cannot read {path}: no such file or folder")
    model = load_model(args.model, args.backend)
    if not getattr(model, "extracts_relations", False):
        raise ValueError(
            "--relation-data needs a relation-extraction model on the torch backend (the built-in model "
            f"and GLiNER relex checkpoints): {RELEX_MODEL_HINT}"
        )
    _check_auto(model, args.threshold)
    results = []
    for path in args.relation_data:
        try:
            results.append(
                evaluate_relations(
                    model,
                    path,
                    relations=relations,
                    threshold=args.threshold,
                    relation_threshold=args.relation_threshold,
                    adjacency_threshold=args.adjacency_threshold,
                    limit=args.limit,
                    batch_size=args.batch_size,
                    progress=sys.stderr.isatty(),
                )  # fmt: skip
            )
        except OSError as e:
            raise ValueError(f"cannot read the data: {_os_message(e)}") from e
    sys.stdout.write(format_relation_table(results))
    if args.limit is not None:
        sys.stdout.write(f"\nscored on the first {args.limit} records of each set\n")
    if args.json:
        text = json.dumps([r.to_json() for r in results], indent=2) + "\n"
        try:
            args.json.write_text(text, encoding="utf-8")
        except OSError as e:
            raise Failed(f"cannot write {args.json}: {e.strerror or _one_line(e)}") from e
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from anyner import evaluate
    from anyner.calibrate import fit_bands, format_fit, parse_edges, read_label_counts
    from anyner.calibration import CALIBRATION_NAME, DEFAULT_EDGES

    # the arguments and the data first, so that a bad one is reported at once, not after the model loads
    if args.limit is not None:
        positive_int(args.limit, "--limit")
    positive_int(args.batch_size, "--batch-size")
    edges = parse_edges(args.bands) if args.bands is not None else DEFAULT_EDGES
    counts = read_label_counts(args.label_counts)
    if not args.model_dir.is_dir():
        raise ValueError(
            f"{args.model_dir} is not a folder: MODEL_DIR is the model's own folder, where calibration.json is written"
        )
    folders = evaluate.benchmark_folders(args.dev, split=args.split)
    model = load_model(str(args.model_dir), args.backend)
    try:
        result = fit_bands(
            model, folders, counts, edges=edges, limit=args.limit, batch_size=args.batch_size, words=args.words,
            split=args.split, progress=sys.stderr.isatty(),
        )  # fmt: skip
    except OSError as e:
        raise ValueError(f"cannot read the data: {_os_message(e)}") from e
    out = sys.stdout
    out.write(format_fit(result))
    if args.limit is not None:
        out.write(f"fitted on the first {args.limit} sentences of each dev set\n")
    try:
        path = result.calibration.save(args.model_dir / CALIBRATION_NAME)
    except OSError as e:
        raise Failed(f"cannot write {args.model_dir / CALIBRATION_NAME}: {e.strerror or _one_line(e)}") from e
    out.write(f"wrote {path}\n")
    return EXIT_OK


def _need_plot(what: str) -> None:
    from anyner.plot import matplotlib_missing

    why = matplotlib_missing(what)
    if why is not None:
        raise Failed(why)


def cmd_plot(args: argparse.Namespace) -> int:
    _need_plot("anyner plot")
    from anyner.plot import plot_curves

    try:
        out = plot_curves(args.run, args.out)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e
    sys.stdout.write(f"wrote {out}\n")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    _need("anyner train", "torch", "torch", "transformers")
    from anyner.train import Trainer, load_train_config

    until_step = None if args.until_step is None else positive_int(args.until_step, "--until-step")
    try:
        trainer = Trainer(load_train_config(args.config))
    except (OSError, NotImplementedError, ImportError) as e:
        # the config file, or a data file, encoder or init_from model it names: all input
        raise ValueError(_os_message(e) if isinstance(e, OSError) else _one_line(e)) from e
    trainer.fit(resume=args.resume, until_step=until_step)
    return EXIT_OK


_SERVE_COUNTS = (
    "batch_size", "queue_size", "max_text_chars", "max_texts", "max_labels", "max_label_chars",
    "max_body_bytes",
)  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    for dest in _SERVE_COUNTS:
        positive_int(getattr(args, dest), "--" + dest.replace("_", "-"))
    positive_int(args.workers, "--workers")
    threads = serve_threads(args.workers, args.threads)
    if not 0 <= args.shutdown_timeout <= 3600:
        raise ValueError(f"--shutdown-timeout must be seconds in [0, 3600], got {args.shutdown_timeout!r}")
    _need("anyner serve", "serve", "fastapi", "uvicorn")
    try:
        from anyner import deploy, serve
    except ImportError as e:
        raise Failed(f"anyner serve cannot start ({_one_line(e)}): pip install 'anyner[serve]'") from e

    # the arguments first, so that a bad one is reported at once, not after the model loads
    api_key = deploy.read_api_key(args.api_key_file)  # ValueError: exit 2; OSError: exit 1
    if args.cors_origins:
        deploy.cors_options(args.cors_origins)
    limits = serve.Limits(
        max_text_chars=args.max_text_chars, max_texts=args.max_texts, max_labels=args.max_labels,
        max_label_chars=args.max_label_chars, max_body_bytes=args.max_body_bytes,
    )  # fmt: skip
    options = dict(
        limits=limits, batch_size=args.batch_size, queue_size=args.queue_size, max_wait_ms=args.max_wait_ms,
        name=args.model or "builtin", cors_origins=args.cors_origins, shutdown_timeout=args.shutdown_timeout,
    )  # fmt: skip
    where = dict(host=args.host, port=args.port, log_level=args.log_level)
    if args.workers == 1:
        serve.run(load_model(args.model, args.backend, threads), **where, api_key=api_key, **options)
        return EXIT_OK
    # Each worker loads its own model; loading it here first turns a bad --model into one
    # clear error, rather than workers that fail one after the other.
    load_model(args.model, args.backend)  # and dropped
    spec = deploy.worker_options(
        model=args.model, backend=args.backend, api_key_file=args.api_key_file, threads=threads, **options
    )
    serve.run(None, **where, workers=args.workers, worker_options=spec, api_key=api_key, **options)
    return EXIT_OK


def serve_threads(workers: int, threads: int | None) -> int | None:
    """Threads per worker of ``anyner serve``: ``--threads``, else None (all cores) for one
    worker and ``cores // workers`` (at least 1) for several, so that N workers do not run N x
    cores threads."""
    if threads is not None:
        return positive_int(threads, "--threads")
    if workers == 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def cmd_export(args: argparse.Namespace) -> int:
    _need("anyner export onnx", "torch", "torch", "transformers")
    _need("anyner export onnx", "onnx", "onnx", "onnxruntime")
    from anyner.export_onnx import export_onnx, format_report

    model = load_model(args.model, "torch")  # the export traces the torch network
    try:
        out = export_onnx(model, args.out, quantize=args.quantize, opset=args.opset)
    except (ImportError, OSError, RuntimeError) as e:
        raise Failed(f"export failed: {_one_line(e)}") from e
    sys.stdout.write(f"wrote {out}\n" + format_report(out))
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    from anyner import hub

    hub.check_repo_id(args.repo_id)  # a bad id, card or no Hub fails before the model loads
    card = None
    if args.card is not None:
        try:
            card = args.card.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(
                f"cannot read the model card {args.card}: {getattr(e, 'strerror', None) or e}"
            ) from e
    try:
        hub.check_online(args.repo_id)
    except hub.HubError as e:
        raise Failed(str(e)) from e
    _need("anyner push", "torch", "torch", "transformers")
    model = load_model(args.model, "torch")  # the upload is the torch weights, as save_pretrained writes them
    try:
        url = model.push_to_hub(
            args.repo_id, private=args.private, commit_message=args.message, revision=args.revision,
            model_card=card,
        )  # fmt: skip
    except hub.HubError as e:
        raise Failed(str(e)) from e
    sys.stdout.write(f"pushed {args.model or 'builtin'} to {args.repo_id}: {url}\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the ``anyner`` command; the exit status is one of ``EXIT_STATUS``'s, for every subcommand."""
    args = _parser().parse_args(argv)  # argparse exits 2 (EXIT_USAGE) itself on a bad command line
    try:
        return args.func(args)
    except Failed as e:
        return _fail(EXIT_FAILED, e)
    except (ValueError, TypeError) as e:  # the library's and validate's word on an argument or input
        return _fail(EXIT_USAGE, e)
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_OK
    except OSError as e:  # the work failed on the way: a disk full, a write refused
        return _fail(EXIT_FAILED, _os_message(e))
    except KeyboardInterrupt:
        print("anyner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED  # 128 + SIGINT, as shells report it


def _fail(status: int, error: BaseException | str) -> int:
    print(f"anyner: error: {_one_line(error)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
