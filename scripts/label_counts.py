"""Count the gold spans of each label in a training config's data: the label frequencies
that ``anyner calibrate --label-counts`` bands thresholds by.

    python scripts/label_counts.py configs/builtin-minilm-v0.3.toml --out ../runs/label_counts.json

Counts are over every record the config's sources keep (``max_records`` and ``keep_empty``
applied, label maps applied), keyed by the label name stripped and lowercased.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="a training config (TOML)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)

    from anyner.fileio import atomic_write_text
    from anyner.train.config import load_train_config
    from anyner.train.sampling import load_corpora

    config = load_train_config(args.config)
    corpora = load_corpora(
        config.data, config.train.seed, log=lambda message: print(message, file=sys.stderr)
    )
    counts: Counter[str] = Counter()
    for corpus in corpora:
        for label, n in corpus.labels.items():
            counts[label.strip().lower()] += n
    atomic_write_text(args.out, json.dumps(dict(counts.most_common()), indent=0, ensure_ascii=False) + "\n")
    print(f"{len(counts)} labels, {sum(counts.values())} spans -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
