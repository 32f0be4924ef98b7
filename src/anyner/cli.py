"""The ``anyner`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

EXAMPLES_PREDICT = """\
examples:
  anyner predict "Bill Gates founded Microsoft on April 4, 1975." --labels person,organization,date
  anyner predict --file notes.txt --labels "drug,dose,side effect" --format jsonl > found.jsonl
  cat texts.jsonl | anyner predict --labels person,city --format json       # JSONL with a "text" field
  anyner predict "..." --labels person --model urchade/gliner_small-v2.1     # a Hub id or a local folder

input: TEXT arguments, else --file, else stdin. Each line is one text; a line that is a
JSON object takes its "text" field. Exit status: 0 on success, 2 on bad arguments or
input, 1 when the model cannot be loaded.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="anyner",
        description="Open-type named entity recognition: find entities of the types you name.",
    )
    from anyner import __version__

    p.add_argument("--version", action="version", version=f"anyner {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    pr = sub.add_parser(
        "predict",
        help="find entities in texts",
        description="Find entities of the given labels in texts and print them.",
        epilog=EXAMPLES_PREDICT,
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
    pr.add_argument(
        "-t", "--threshold", type=float, default=0.5, help="minimum score in [0, 1] (default 0.5)"
    )
    pr.add_argument(
        "--format",
        choices=("table", "json", "jsonl", "html"),
        default="table",
        help="output format (default table)",
    )
    pr.add_argument("--nested", action="store_true", help="allow entities inside entities")
    pr.add_argument("--multi-label", action="store_true", help="let one span carry several labels")
    pr.add_argument("--batch-size", type=int, default=8, help="texts per model batch (default 8)")
    pr.set_defaults(func=cmd_predict)
    return p


def _labels(arg: str) -> list[str]:
    labels = [x.strip() for x in arg.split(",") if x.strip()]
    if not labels:
        raise ValueError("--labels is empty: give comma-separated labels, e.g. --labels person,organization")
    return labels


def _read_texts(args: argparse.Namespace) -> Iterator[str]:
    if args.texts:
        yield from args.texts
        return
    stream = args.file.open(encoding="utf-8") if args.file else sys.stdin
    with stream:
        for n, line in enumerate(stream, 1):
            line = line.rstrip("\r\n")
            if line.lstrip().startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{args.file or '<stdin>'}:{n}: not valid JSON: {e}") from e
                if not isinstance(record.get("text"), str):
                    raise ValueError(f"{args.file or '<stdin>'}:{n}: JSON line has no string field 'text'")
                line = record["text"]
            yield line


def cmd_predict(args: argparse.Namespace) -> int:
    from anyner.pipeline import AnyNER

    labels = _labels(args.labels)
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    try:
        model = AnyNER.from_pretrained(args.model)
    except (OSError, NotImplementedError) as e:
        print(f"anyner: cannot load the model: {e}", file=sys.stderr)
        return 1
    texts = list(_read_texts(args))
    show_progress = len(texts) > 32 and sys.stderr.isatty()
    results = model.predict_batch(
        texts, labels, batch_size=args.batch_size, threshold=args.threshold, flat=not args.nested,
        multi_label=args.multi_label, progress=show_progress,
    )  # fmt: skip
    out = sys.stdout
    if args.format == "json":
        json.dump(
            [
                {"text": t, "entities": [e.to_dict() for e in ents]}
                for t, ents in zip(texts, results, strict=True)
            ],
            out,
            ensure_ascii=False,
            indent=2,
        )
        out.write("\n")
    elif args.format == "jsonl":
        for t, ents in zip(texts, results, strict=True):
            out.write(
                json.dumps({"text": t, "entities": [e.to_dict() for e in ents]}, ensure_ascii=False) + "\n"
            )
    elif args.format == "html":
        from anyner.render import render_page

        out.write(render_page(zip(texts, results, strict=True)))
    else:
        for i, ents in enumerate(results):
            if len(texts) > 1:
                out.write(f"# text {i + 1}\n")
            if not ents:
                out.write("(no entities)\n")
            width = max((len(e.text) for e in ents), default=0)
            for e in ents:
                out.write(f"{e.text:<{width}}  {e.label:<20}  {e.score:.2f}  [{e.start}:{e.end}]\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        print(f"anyner: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
