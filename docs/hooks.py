"""MkDocs hooks: the CLI reference is the argument parser's own help, so it cannot drift.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is replaced by
the ``format_help()`` text of ``anyner`` and of each subcommand (``export onnx`` too), read
from the parser ``anyner.cli`` builds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fixed, so the page does not depend on the terminal


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and its subcommands' parsers, depth first, in the order they were added."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases would repeat a parser
                out += _subcommands(sub)
    return out


def cli_reference() -> str:
    """Markdown: one section per command, holding its ``--help`` text."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    from anyner.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parts = []
        for p in _subcommands(build_parser()):
            level = "###" if p.prog.count(" ") <= 1 else "####"  # under the page's "## Reference"
            parts.append(f"{level} `{p.prog}`\n\n```text\n{p.format_help().rstrip()}\n```\n")
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "cli.md":
        if MARKER not in markdown:
            raise ValueError(
                f"docs/cli.md lost its marker {MARKER}: the CLI reference would not be generated"
            )
        return markdown.replace(MARKER, cli_reference())
    return markdown
