"""Recipe ablations for the built-in model, measured zero-shot on held-out training corpora.

Five corpora of the permissive training pool are held out of every ablation run
(wnut17, cyner, stackoverflow_ner, litbank, inlegalner): their dev/test splits
become a zero-shot dev suite, so recipe choices are made without touching the
benchmark. Each variant starts from configs/builtin-minilm.toml, changes one
thing, trains a short run (resumable) and scores the dev suite.

    python scripts/ablate.py baseline names head512 --steps 1500
    python scripts/ablate.py --report            # the table of finished variants

Runs and dev folders go to ../runs/ablations (outside the repository).

``--base v0.3`` starts from configs/builtin-minilm-v0.3.toml instead. Its dev suite is the
four corpora that recipe holds out (HAnDS 1k, HIPE-2022 ajmc, InLegalNER, WNUT-17 dev; the
first two converted by scripts/prepare_pool.py), and its runs go to ../runs/ablations-v0.3:

    python scripts/ablate.py --base v0.3 baseline seed14 v02data v02data-seed14 --steps 1000

``--base v0.4`` continues the shipped v0.4 (configs/builtin-minilm-v0.4.toml) for ``--steps``:
on its own pool, or with pilener-subset-nc as a third of the examples (research only), scored
on the v0.3 dev suite; runs go to ../runs/ablations-v0.4:

    python scripts/ablate.py --base v0.4 more more-pilener --steps 1000 --ood-limit 200

Label descriptions: ``more-pilener-desc`` is ``more-pilener`` with each type that SLIMER
defines (pilener-subset-nc's all_423_NE_definitions.json) prompted by its definition half the
time, through ``rename_labels``. Coarse and fine names: ``more-coarse`` prompts a fine gold type
by its broader name (label_synonyms.json) half the time, where that is safe.

``--base cycle2`` runs v0.4's second cycle again from v0.3 as shipped (read from the git
history) with one change; ``pilener-nc`` is the research model (CC BY-NC data, never shipped),
``v04-seed18`` v0.4 with another seed. Both are scored on the dev suite and the whole OOD
benchmark; runs go to ../runs/research-cycle2:

    python scripts/ablate.py --base cycle2 pilener-nc --steps 7000 --ood-limit 0
    python scripts/ablate.py --base cycle2 v04-seed18 --steps 7000 --ood-limit 0
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT.parent / "runs" / "ablations"
DATA = ROOT.parent / "shared" / "data" / "train"

# corpus file names of the recipe that are held out, and the split each dev set comes from
HELD_OUT = {
    "wnut17": ("wnut17/emerging.dev.conll", "wnut17"),
    "cyner": ("cyner/cyner_valid.jsonl", None),
    "stackoverflow": ("stackoverflow_ner/so_dev.jsonl", None),
    "litbank": ("litbank/litbank_entities_nested.jsonl", None),
    "inlegalner": ("inlegalner/inlegalner_dev.jsonl", None),
}
HELD_OUT_TRAIN = ("wnut17", "cyner", "stackoverflow_ner", "litbank", "inlegalner")

VARIANTS = {
    "baseline": {},
    "seed14": {"train": {"seed": 14}},  # the baseline with another seed: the noise of one run
    "names": {"train": {"rename_labels": 0.3}},
    "names50": {"train": {"rename_labels": 0.5}},
    "head512": {"model": {"hidden_size": 512}},
    "head768-lstm": {"model": {"hidden_size": 768, "num_rnn_layers": 1}},
    "dropout04": {"model": {"dropout": 0.4}},
    "bce": {"train": {"loss": "bce"}},
    "nomix": {"train": {"mix_corpora": False}},  # one corpus per batch (negatives still from all)
    # the share of span-less records (dialogue turns without slots, sentences without entities)
    "noempty": {"data*": {"keep_empty": 0.0}},
    "empty25": {"data*": {"keep_empty": 0.25}},
    # not for a shipped model (licenses): what broader types would buy
    "pilener": {
        "data+": [
            {
                "path": "../../shared/data/train/pilener-subset-nc/pilener391_ALL_dev_gliner.json",
                "weight": 3.0,
            }
        ]
    },
    "ufet": {
        "data+": [
            {
                "path": "../../shared/data/train/research-unclear-license/ufet_crowd/ufet_crowd_train.jsonl",
                "weight": 2.0,
            }
        ]
    },
}


# --base v0.3: the recipe, its dev suite (held out of the recipe itself) and its variants
POOL = ROOT.parent / "runs" / "pool"
NEW_SOURCES = ("fewnerd", "runs/pool/")  # the sources v0.3 added to the v0.2 recipe
BASES = {
    "v0.2": {
        "config": "builtin-minilm.toml",
        "runs": "ablations",
        "held_out": HELD_OUT,
        "drop": HELD_OUT_TRAIN,
    },
    "v0.3": {
        "config": "builtin-minilm-v0.3.toml",
        "runs": "ablations-v0.3",
        "held_out": {
            "hands": (str(POOL / "hands_fine.jsonl"), None),
            "hipe_ajmc": (str(POOL / "hipe_ajmc.jsonl"), None),
            "inlegalner": ("inlegalner/inlegalner_dev.jsonl", None),
            "wnut17": ("wnut17/emerging.dev.conll", "wnut17"),
        },
        "drop": (),
    },
}
BASES["v0.4"] = {**BASES["v0.3"], "config": "builtin-minilm-v0.4.toml", "runs": "ablations-v0.4"}
BASES["cycle2"] = {**BASES["v0.3"], "config": "builtin-minilm-v0.4.toml", "runs": "research-cycle2"}
# --base v0.4: continue the shipped v0.4 for --steps, on its own pool or with Pile-NER-style
# data a third of the examples (pilener-subset-nc, CC BY-NC: research only). Same dev suite as v0.3.
PILENER_THIRD = [{**VARIANTS["pilener"]["data+"][0], "weight": 15.0}]  # weight 15 against the pool's 30
# SLIMER's definitions of pilener-subset-nc's types (CC BY-NC as the set), as other names of
# the types: with rename_labels 0.5, each prompted label that has one shows it half the time
DEFINITIONS = DATA / "pilener-subset-nc" / "all_423_NE_definitions.json"
DEFINED_NAMES = POOL / "pilener-subset-nc_definitions.json"  # written by definitions_file()
DESCRIBED = {"rename_labels": 0.5, "label_names": str(DEFINED_NAMES)}
# coarse and fine names: the packaged label_synonyms.json's broader names only (no synonyms), so
# that a fine gold type ("politician") is prompted by its coarse name ("person") half the time,
# where no other gold type of the example falls under it, and never in a corpus that annotates
# only its own types (Few-NERD's files)
BROADER_NAMES = POOL / "broader_names.json"  # written by broader_file()
COARSE = {"rename_labels": 0.5, "label_names": str(BROADER_NAMES)}
VARIANTS_V04 = {
    "more": {"train": {"seed": 31}},
    "more-pilener": {"train": {"seed": 31}, "data+": PILENER_THIRD},
    "more-seed32": {"train": {"seed": 32}},
    "more-pilener-seed32": {"train": {"seed": 32}, "data+": PILENER_THIRD},
    # label descriptions: the same pilener runs, each defined type shown by its definition half the time
    "more-pilener-desc": {"train": {"seed": 31, **DESCRIBED}, "data+": PILENER_THIRD},
    "more-pilener-desc-seed32": {"train": {"seed": 32, **DESCRIBED}, "data+": PILENER_THIRD},
    "more-coarse": {"train": {"seed": 31, **COARSE}},
    "more-coarse-seed32": {"train": {"seed": 32, **COARSE}},
}

# --base cycle2: v0.4's second cycle (configs/builtin-minilm-v0.4.toml, its seed and steps) run
# again from v0.3 as shipped, with one change. "pilener-nc" adds pilener-subset-nc as a third of
# the examples: the research model (CC BY-NC data: never shipped), against v0.4 itself.
V03_COMMIT = "f06f01a"  # the last commit whose built-in model is v0.3
V03 = ROOT.parent / "runs" / "v0.3-shipped"
VARIANTS_CYCLE2 = {
    "pilener-nc": {"model": {"init_from": str(V03)}, "data+": PILENER_THIRD},
    # v0.4 itself with another seed (v0.4 is seed 17): the spread between two full cycles
    "v04-seed18": {"model": {"init_from": str(V03)}, "train": {"seed": 18}},
}

VARIANTS_V03 = {
    "baseline": {},
    "seed14": {"train": {"seed": 14}},
    # the v0.2 sources only (minus the dev suite): what the new data buys
    "v02data": {"data-": NEW_SOURCES},
    "v02data-seed14": {"data-": NEW_SOURCES, "train": {"seed": 14}},
    # the new data without Few-NERD
    "nofewnerd": {"data-": ("fewnerd",)},
    "nofewnerd-seed14": {"data-": ("fewnerd",), "train": {"seed": 14}},
    # not for a shipped model (CC BY-NC): what Pile-NER-style data (368 open types) buys
    "pilener": {"data+": VARIANTS["pilener"]["data+"]},
    "pilener-seed14": {"data+": VARIANTS["pilener"]["data+"], "train": {"seed": 14}},
}
BASE = BASES["v0.2"]


def make_dev(limit: int = 300, seed: int = 0) -> list[Path]:
    """Write each held-out corpus's dev split as a benchmark folder (test.json + labels.json)."""
    from anyner.data import load_label_map, read_examples

    folders = []
    for name, (relative, label_map) in BASE["held_out"].items():
        folder = RUNS / "dev" / name
        folders.append(folder)
        if (folder / "test.json").exists():
            continue
        examples, _ = read_examples(
            DATA / relative, label_map=load_label_map(label_map) if label_map else None
        )
        examples = [e for e in examples if e.spans]
        random.Random(seed).shuffle(examples)
        records, labels = [], set()
        for ex in examples[:limit]:
            starts, pos = [], 0
            for w in ex.words:
                starts.append(pos)
                pos += len(w) + 1
            text = " ".join(ex.words)
            ents = []
            for s in ex.spans:
                a, b = starts[s.start], starts[s.end - 1] + len(ex.words[s.end - 1])
                ents.append({"name": text[a:b], "type": s.label, "pos": [a, b]})
                labels.add(s.label)
            records.append({"sentence": text, "entities": ents})
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "test.json").write_text(json.dumps(records, ensure_ascii=False))
        (folder / "labels.json").write_text(json.dumps(sorted(labels)))
    return folders


def definitions_file() -> Path:
    """Write SLIMER's one-sentence definition of each pilener-subset-nc type as its other name."""
    if DEFINED_NAMES.exists():
        return DEFINED_NAMES
    import re

    table = {}
    for name, entry in json.loads(DEFINITIONS.read_text(encoding="utf-8")).items():
        # the answers are JSON-like text, some with invalid escapes: read the one field directly
        found = re.search(r'"Definition":\s*"(.*?)",\s*"Guidelines"', entry.get("gpt_answer", ""), re.S)
        if found and found.group(1).strip():
            table[name] = [found.group(1).replace('\\"', '"').strip()]
    tmp = DEFINED_NAMES.with_suffix(".tmp")
    tmp.write_text(json.dumps({"synonyms": table}, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(DEFINED_NAMES)
    print(f"{len(table)} definitions written to {DEFINED_NAMES}", flush=True)
    return DEFINED_NAMES


def broader_file() -> Path:
    """Write the packaged label names' broader table alone (a names file without synonyms)."""
    from importlib import resources

    raw = json.loads(resources.files("anyner.resources").joinpath("label_synonyms.json").read_text("utf-8"))
    tmp = BROADER_NAMES.with_suffix(".tmp")
    tmp.write_text(json.dumps({"broader": raw["broader"]}, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(BROADER_NAMES)
    return BROADER_NAMES


def v03_folder() -> Path:
    """v0.3 as shipped, from the repository's history (the start of v0.4's second cycle)."""
    import subprocess

    files = ("gliner_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    if all((V03 / f).exists() for f in files):
        return V03
    V03.mkdir(parents=True, exist_ok=True)
    for f in files:
        blob = f"{V03_COMMIT}:src/anyner/resources/builtin/{f}"
        try:
            data = subprocess.run(["git", "show", blob], cwd=ROOT, capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"cannot read {blob} (a git clone with its history is needed): {e}")
        (V03 / (f + ".tmp")).write_bytes(data)
        (V03 / (f + ".tmp")).replace(V03 / f)
    return V03


def variant_config(name: str, steps: int):
    from anyner.train.config import config_from_dict

    raw = tomllib.loads((ROOT / "configs" / BASE["config"]).read_text())
    raw = copy.deepcopy(raw)
    raw["data"] = [d for d in raw["data"] if not any(h in d["path"] for h in BASE["drop"])]
    for table, values in VARIANTS[name].items():
        if table == "data-":  # drop the sources whose path holds one of these strings
            raw["data"] = [d for d in raw["data"] if not any(h in d["path"] for h in values)]
        elif table == "data+":
            raw["data"] += values
        elif table == "data*":  # the same fields on every data source
            raw["data"] = [{**d, **values} for d in raw["data"]]
        else:
            raw.setdefault(table, {}).update(values)
    raw["train"]["steps"] = steps
    raw["output"] = {"dir": str(RUNS / name), "save_every": 100, "keep": 2, "log_every": 50}
    return config_from_dict(raw, base=ROOT / "configs")


def ood_folders() -> list[Path]:
    root = ROOT.parent / "shared" / "data" / "benchmark" / "ood"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def run(name: str, steps: int, dev: list[Path], ood_limit: int) -> dict:
    from anyner.evaluate import evaluate_suite
    from anyner.train import Trainer

    out = RUNS / name / "result.json"
    if out.exists():
        return json.loads(out.read_text())
    trainer = Trainer(variant_config(name, steps), progress=False)
    model = trainer.fit(resume=True)
    suite = evaluate_suite(model, dev, threshold=0.5)
    # the benchmark scores the finished variant only: nothing is tuned on it
    ood = evaluate_suite(model, ood_folders(), threshold=0.5, limit=ood_limit or None)
    losses = [json.loads(x) for x in (RUNS / name / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in losses if "loss" in r]
    result = {
        "variant": name,
        "change": VARIANTS[name],
        "steps": steps,
        "dev_f1": {d.name: round(d.scores.f1, 1) for d in suite.datasets},
        "average_f1": round(suite.average_f1, 1),
        "ood_f1": {d.name: round(d.scores.f1, 1) for d in ood.datasets},
        "ood_average_f1": round(ood.average_f1, 1),
        "ood_limit": ood_limit,
        "last_loss": losses[-1]["loss"] if losses else None,
        "s_per_step": losses[-1]["elapsed_s"] / max(1, losses[-1]["step"]) if losses else None,
    }
    out.write_text(json.dumps(result, indent=1))
    return result


NON_COMMERCIAL = ("pilener-subset-nc", "research-unclear-license")


def label_research_model(name: str, result: dict) -> Path | None:
    """Write a model card that marks a variant trained on non-commercial data as research only."""
    sources = [d["path"] for d in VARIANTS[name].get("data+", [])]
    sources += [VARIANTS[name].get("train", {}).get("label_names") or ""]
    restricted = [s for s in sources if any(n in s for n in NON_COMMERCIAL)]
    folder = RUNS / name / "model"
    if not restricted or not folder.is_dir():
        return None
    rows = "\n".join(f"| {k} | {v} |" for k, v in {**result["dev_f1"], **result["ood_f1"]}.items())
    ood = (
        "whole test sets" if not result.get("ood_limit") else f"first {result['ood_limit']} sentences per set"
    )
    # where it started, in words that hold on any machine
    change = json.dumps(VARIANTS[name]).replace(str(V03), f"v0.3 as shipped (commit {V03_COMMIT})")
    card = f"""# anyner research model `{BASE["runs"]}/{name}`: NON-COMMERCIAL, research only

Trained on data licensed for non-commercial use only (CC BY-NC 4.0):
{chr(10).join("- " + (s[s.find("shared/") :] if "shared/" in s else s) for s in restricted)}

Do not use it commercially and do not ship it: it exists to measure what that data buys. It
is never the built-in model, which is trained on permissively licensed data only.

Recipe: `python scripts/ablate.py --base {[k for k, v in BASES.items() if v is BASE][0]} {name} --steps {result["steps"]}`
(configs/{BASE["config"]} with this change: `{change}`).

F1 at threshold 0.5 (dev: the zero-shot dev suite; OOD: {ood}):

| set | F1 |
|---|---|
{rows}
| dev average | {result["average_f1"]} |
| OOD average | {result["ood_average_f1"]} |
"""
    (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return folder / "MODEL_CARD.md"


def report() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/result.json"))]
    if not rows:
        print("no finished variant under", RUNS)
        return
    names = list(rows[0]["dev_f1"])
    w = max(14, *(len(r["variant"]) + 1 for r in rows))
    head = f"{'variant':{w}}" + "".join(f"{n[:13]:>14}" for n in names)
    print(head + f"{'dev avg':>10}{'OOD avg':>10}{'steps':>7}")
    for r in rows:
        cells = "".join(f"{r['dev_f1'][n]:>14.1f}" for n in names)
        ood = r.get("ood_average_f1")
        ood = f"{ood:>10.1f}" if ood is not None else f"{'-':>10}"
        print(f"{r['variant']:{w}}{cells}{r['average_f1']:>10.1f}{ood}{r['steps']:>7}")
    print("dev: zero-shot on held-out training corpora; OOD: first N sentences of each OOD test set")


def main() -> int:
    global RUNS, BASE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "variants",
        nargs="*",
        choices=[[], *VARIANTS, *VARIANTS_V03, *VARIANTS_V04, *VARIANTS_CYCLE2],
        help="variants to run, in order",
    )
    ap.add_argument("--base", choices=list(BASES), default="v0.2", help="the recipe the variants change")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--ood-limit", type=int, default=300, help="OOD sentences per set scored (0: all)")
    ap.add_argument("--report", action="store_true", help="print the table of finished variants")
    args = ap.parse_args()
    BASE = BASES[args.base]
    RUNS = ROOT.parent / "runs" / BASE["runs"]
    if args.base != "v0.2":
        VARIANTS.clear()
        VARIANTS.update({"v0.3": VARIANTS_V03, "v0.4": VARIANTS_V04, "cycle2": VARIANTS_CYCLE2}[args.base])
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"no variant {', '.join(unknown)} for --base {args.base}; choose from {', '.join(VARIANTS)}")
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: the ablations need the shared training data")
    names_files = {VARIANTS[v].get("train", {}).get("label_names") for v in args.variants}
    if str(DEFINED_NAMES) in names_files:
        definitions_file()
    if str(BROADER_NAMES) in names_files:
        broader_file()
    if args.base == "cycle2" and args.variants:
        v03_folder()
    dev = make_dev()
    for name in args.variants:
        result = run(name, args.steps, dev, args.ood_limit)
        print(json.dumps(result), flush=True)
        card = label_research_model(name, result)
        if card:
            print(f"non-commercial research model: card written to {card}", flush=True)
    if args.report or args.variants:
        report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
