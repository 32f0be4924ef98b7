"""Convert the training pool's sets in their publishers' forms into GLiNER JSONL.

The built-in model's recipe (configs/builtin-minilm-v0.3.toml) reads GLiNER JSONL and
CoNLL files. The sets below come in other forms (BioNLP standoff, HIPE TSV, dialogue
JSON, mongoexport JSON lines, ...): this script reads each on the real files, renames
the publishers' codes with the packaged label maps (src/anyner/resources/label_maps),
and writes one ``{"tokenized_text": [...], "ner": [[start, end, label], ...]}`` record a
line (inclusive word indices) to ``--out`` (default ``../runs/pool``, outside the
repository: nothing from the shared data is committed). Each set prints what it read,
kept and skipped; an unmapped code stops the script (add it to the set's label map).

    python scripts/prepare_pool.py                 # every set
    python scripts/prepare_pool.py gro hands      # some sets
    python scripts/prepare_pool.py --check        # read and report, write nothing

Words come from the GLiNER word pattern (``anyner.words.split_words``) where a set gives
character offsets; a span is widened to the words its characters touch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANYNER_SHARED") or ROOT.parent / "shared") / "data" / "train"
OUT = ROOT.parent / "runs" / "pool"

Record = tuple[list[str], list[tuple[int, int, str]]]  # words, half-open spans with natural names


class Tally:
    """What one set's reading met: records, spans, skips and the codes with no name."""

    def __init__(self, name: str):
        self.name = name
        self.records = 0
        self.spans = 0
        self.empty = 0
        self.skips: Counter[str] = Counter()
        self.unmapped: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()

    def line(self) -> str:
        skips = ", ".join(f"{n} {why}" for why, n in self.skips.most_common()) or "none"
        return (
            f"{self.name}: {self.records} records ({self.empty} without a span), {self.spans} spans, "
            f"{len(self.labels)} labels; skipped: {skips}"
        )


def load_map(corpus: str) -> dict[str, str]:
    from anyner.data import load_label_map

    return load_label_map(corpus)


def name_of(code: str, table: dict[str, str], tally: Tally) -> str | None:
    name = table.get(code)
    if name is None:
        tally.unmapped[code] += 1
    return name


# ---------------------------------------------------------------- character offsets -> words
class CharText:
    """A text split into GLiNER words, mapping character spans to word spans."""

    def __init__(self, text: str):
        from anyner.words import split_words

        words = split_words(text)
        self.words = [w.text for w in words]
        self.starts = [w.start for w in words]
        self.ends = [w.end for w in words]

    def span(self, start: int, end: int, tally: Tally) -> tuple[int, int] | None:
        if end <= start:
            tally.skips["empty character span"] += 1
            return None
        from anyner.words import word_span

        span = word_span(self.starts, self.ends, start, end)
        if span is None:
            tally.skips["character span covers no word"] += 1
        return span


ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "vs",
    "etc",
    "al",
    "no",
    "fig",
    "gen",
    "col",
    "lt",
    "sgt",
    "capt",
    "gov",
}


def sentences(text: str, spans: list[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Character ranges of the sentences of a text: a break after . ! ? before a capital or a
    digit, never inside one of ``spans`` nor after an abbreviation ("U.S.", "Dr.", "e.g.")."""
    cuts = [0]
    for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])", text):
        word = re.search(r"(\S+)[.!?]$", text[: m.start()])
        before = word.group(1).lower().strip("(\"'") if word else ""
        if (
            before in ABBREVIATIONS
            or re.fullmatch(r"(\w\.)*\w", before)
            and len(before.replace(".", "")) <= 2
        ):
            continue
        if any(a < m.start() < b for a, b in spans):
            continue
        cuts.append(m.end())
    cuts.append(len(text))
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]


# ---------------------------------------------------------------- the sets
def gro(tally: Tally) -> Iterator[Record]:
    """BioNLP-ST 2013 GRO: .txt + .a1 standoff, one record a sentence; nested spans kept."""
    table = load_map("bionlp13gro")
    for path in sorted((DATA / "bionlp13gro" / "original-data").glob("*/*.a1")):
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        spans_by_sentence: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        found = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.startswith("T"):
                continue
            try:
                _, kind, _ = line.split("\t", 2)
                code, start, end = kind.split(" ")[0], int(kind.split(" ")[1]), int(kind.split(" ")[-1])
            except (ValueError, IndexError):
                tally.skips[f"unreadable line ({path.name}:{number})"] += 1
                continue
            found.append((code, start, end))
        ranges = sentences(text, [(start, end) for _, start, end in found])
        for code, start, end in found:
            where = next((i for i, (a, b) in enumerate(ranges) if a <= start and end <= b), None)
            if where is None:
                tally.skips["span across sentences"] += 1
                continue
            name = name_of(code, table, tally)
            if name:
                spans_by_sentence[where].append((start, end, name))
        for i, (a, b) in enumerate(ranges):
            chars = CharText(text[a:b])
            spans = []
            for start, end, name in spans_by_sentence.get(i, []):
                got = chars.span(start - a, end - a, tally)
                if got:
                    spans.append((*got, name))
            yield chars.words, spans


def maintie(tally: Tally) -> Iterator[Record]:
    """MaintIE gold work orders; type paths named by their last class (label map)."""
    table = load_map("maintie")
    for item in json.loads((DATA / "maintie" / "data" / "gold_release.json").read_text(encoding="utf-8")):
        spans = []
        for e in item["entities"]:
            name = name_of(e["type"], table, tally)
            if name:
                spans.append((e["start"], e["end"], name))
        yield list(item["tokens"]), spans


def hands(tally: Tally, finest: bool = False) -> Iterator[Record]:
    """HAnDS 1k-WFB-g (complete = dev + test): every FIGER path of a mention, coarse and fine;
    with ``finest`` only its finest path (one label a mention: a dev set for flat decoding)."""
    table = load_map("hands")
    path = DATA / "hands_1k_wfb_g" / "datasets" / "1k-WFB-g" / "1k-WFB-g_complete.json"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        spans = []
        for m in item["mentions"]:
            codes = [max(m["labels"], key=lambda code: code.count("/"))] if finest else m["labels"]
            for code in codes:
                name = name_of(code, table, tally)
                if name:
                    spans.append((m["start"], m["end"], name))
        yield list(item["tokens"]), spans


def hands_fine(tally: Tally) -> Iterator[Record]:
    """HAnDS with one label a mention, its finest path."""
    return hands(tally, finest=True)


def _annoctr(tally: Tally, splits: set[str]) -> Iterator[Record]:
    table = load_map("annoctr")
    folder = DATA / "annoctr" / "AnnoCTR" / "all"
    split_of = dict(
        line.split("\t")[:2]
        for line in (folder / "splits.tsv").read_text(encoding="utf-8").splitlines()
        if "\t" in line
    )
    for doc, split in sorted(split_of.items()):
        if split.strip() not in splits:
            continue
        path = folder / "ner_bio" / f"{doc}.bio"
        if not path.exists():
            tally.skips["document in splits.tsv without a .bio file"] += 1
            continue
        rows: list[tuple[str, str]] = []
        for line in path.read_text(encoding="utf-8").splitlines() + [""]:
            cols = line.split("\t")
            if line.strip() and not cols[0].startswith("<DOCSTART>"):
                rows.append((cols[0], cols[-1].strip()))
                continue
            if rows:
                yield _bio(rows, table, tally)
                rows = []


def annoctr(tally: Tally) -> Iterator[Record]:
    """AnnoCTR train/dev/test reports: all 11 types (merged last BIO column), one record a sentence."""
    yield from _annoctr(tally, {"train", "dev", "test"})


def annoctr_ext(tally: Tally) -> Iterator[Record]:
    """AnnoCTR ext reports: the general layer only (5 types): train with negatives = "own"."""
    yield from _annoctr(tally, {"ext"})


def _bio(rows: list[tuple[str, str]], table: dict[str, str], tally: Tally) -> Record:
    words, spans = [w for w, _ in rows], []
    start, code = None, None
    for i, (_, tag) in enumerate(rows + [("", "O")]):
        inside = tag.startswith("I-") and code == tag[2:]
        if start is not None and not inside:
            name = name_of(code, table, tally)
            if name:
                spans.append((start, i, name))
            start, code = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            start, code = i, tag[2:]
    return words, spans


def hipe_ajmc(tally: Tally) -> Iterator[Record]:
    """HIPE-2022 ajmc English commentaries: NE-FINE-LIT, pages cut at EndOfSentence."""
    table = load_map("hipe2022-ajmc")
    for path in sorted((DATA / "hipe2022_ajmc_en" / "data" / "v2.1" / "ajmc" / "en").glob("*.tsv")):
        rows: list[tuple[str, str]] = []
        for line in path.read_text(encoding="utf-8").splitlines() + [""]:
            if line.startswith("#") or line.startswith("TOKEN\t"):
                continue
            cols = line.split("\t")
            if line.strip() and len(cols) >= 10:
                rows.append((cols[0], cols[3]))
                if "EndOfSentence" not in cols[9]:
                    continue
            if rows:
                yield _bio(rows, table, tally)
                rows = []


def _char_record(text: str, spans: list[tuple[int, int, str]], table: dict[str, str], tally: Tally) -> Record:
    chars = CharText(text)
    kept = []
    for start, end, code in spans:
        name = name_of(code, table, tally)
        got = chars.span(start, end, tally) if name else None
        if got:
            kept.append((*got, name))
    return chars.words, kept


def nlupp(tally: Tally) -> Iterator[Record]:
    """NLU++ banking and hotels, all 20 folds (a disjoint partition)."""
    table = load_map("nlupp")
    for path in sorted((DATA / "polyai_nlupp" / "nlupp" / "data").glob("*/fold*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            spans = [(s["span"][0], s["span"][1], code) for code, s in (item.get("slots") or {}).items()]
            yield _char_record(item["text"], spans, table, tally)


def restaurant8k(tally: Tally) -> Iterator[Record]:
    """Restaurant-8k train_0 and test (train_1..8 are subsets of train_0)."""
    table = load_map("restaurant8k")
    folder = DATA / "polyai_restaurant8k" / "span_extraction" / "restaurant8k"
    for name in ("train_0.json", "test.json"):
        for item in json.loads((folder / name).read_text(encoding="utf-8")):
            spans = [
                (lab["valueSpan"].get("startIndex", 0), lab["valueSpan"]["endIndex"], lab["slot"])
                for lab in item.get("labels", [])
            ]
            yield _char_record(item["userInput"]["text"], spans, table, tally)


def presidio(tally: Tally, per_template: int = 3) -> Iterator[Record]:
    """Presidio synthetic PII: at most ``per_template`` sentences of each template."""
    table = load_map("presidio")
    seen: Counter[int] = Counter()
    path = DATA / "presidio_synth_pii" / "data" / "synth_dataset_v2.json"
    for item in json.loads(path.read_text(encoding="utf-8")):
        seen[item["template_id"]] += 1
        if seen[item["template_id"]] > per_template:
            tally.skips[f"over {per_template} sentences of one template"] += 1
            continue
        spans = [(s["start_position"], s["end_position"], s["entity_type"]) for s in item["spans"]]
        yield _char_record(item["full_text"], spans, table, tally)


def re3d(tally: Tally) -> Iterator[Record]:
    """re3d documents (BBC subset absent), one record a sentence."""
    table = load_map("re3d")
    for folder in sorted(p for p in (DATA / "re3d").iterdir() if p.is_dir()):
        texts = {}
        for line in (folder / "documents.json").read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                texts[doc["_id"]] = doc["text"]
        spans: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for line in (folder / "entities.json").read_text(encoding="utf-8").splitlines():
            if line.strip():
                e = json.loads(line)
                spans[e["documentId"]].append((e["begin"], e["end"], e["type"]))
        for doc_id, text in sorted(texts.items()):
            for a, b in sentences(text, [(s, e) for s, e, _ in spans.get(doc_id, [])]):
                inside = [(s - a, e - a, c) for s, e, c in spans.get(doc_id, []) if a <= s and e <= b]
                tally.skips["span across sentences"] += sum(
                    1 for s, e, _ in spans.get(doc_id, []) if s < b and e > a and not (a <= s and e <= b)
                )
                yield _char_record(text[a:b], inside, table, tally)


SETS: dict[str, Callable[[Tally], Iterator[Record]]] = {
    "gro": gro,
    "maintie": maintie,
    "hands": hands,
    "hands_fine": hands_fine,
    "annoctr": annoctr,
    "annoctr_ext": annoctr_ext,
    "hipe_ajmc": hipe_ajmc,
    "nlupp": nlupp,
    "restaurant8k": restaurant8k,
    "presidio": presidio,
    "re3d": re3d,
}


def convert(name: str, out: Path | None) -> Tally:
    """Read one set; write ``out/<name>.jsonl`` atomically unless ``out`` is None."""
    tally = Tally(name)
    lines = []
    for words, spans in SETS[name](tally):
        if not words:
            tally.skips["record without words"] += 1
            continue
        unique = sorted(set(spans))
        tally.records += 1
        tally.spans += len(unique)
        tally.empty += not unique
        tally.labels.update(label for _, _, label in unique)
        ner = [[s, e - 1, label] for s, e, label in unique]
        lines.append(json.dumps({"tokenized_text": words, "ner": ner}, ensure_ascii=False))
    if tally.unmapped:
        codes = ", ".join(f"{c!r} ({n})" for c, n in tally.unmapped.most_common())
        raise SystemExit(f"{name}: codes without a natural name in its label map: {codes}")
    if out is not None:
        from anyner.fileio import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{name}.jsonl", "\n".join(lines) + "\n")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sets", nargs="*", choices=[*SETS, []], help="sets to convert (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    parser.add_argument("--check", action="store_true", help="read and report only; write nothing")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"no training pool at {DATA}", file=sys.stderr)
        return 2
    for name in args.sets or list(SETS):
        print(convert(name, None if args.check else args.out).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
