"""Pre-training (masked 3-mers + next-sentence prediction) and taxonomy fine-tuning.

Both commands share one loop: AdamW with warm-up and linear/cosine decay, validation every epoch
(or every K steps), early stopping, a progress line, a JSONL metrics log and a resumable
checkpoint. Every file written is safetensors or JSON: no pickle, so checkpoints are safe to
load from anywhere.

Randomness is drawn from generators seeded by (seed, epoch, batch), so a resumed run sees the
same batches, strands and masks as an uninterrupted one (only dropout differs).

Resuming: `resume="yes"` continues from the checkpoint whatever it was written for (e.g. a second
leg at another learning rate); `resume="auto"` (the pipeline's) only when the checkpoint's
fingerprint (input contents and the settings that shape training) matches, else it starts over.
With `time_limit_total` the time limit covers every resumed run together, so a killed and
resumed run trains as long as an uninterrupted one, and a finished one is not trained again.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hytax.data import RANKS, read_labels
from hytax.errors import HytaxError
from hytax.model import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    BertConfig,
    BertPretraining,
    BertTax,
    ModelBundle,
    head_config,
    keep_freed_cpu_memory,
    save_model,
)
from hytax.seqio import read_records, reverse_complement
from hytax.tokenizer import CLS, MASK, N_SPECIAL, PAD, SEP, VOCAB, kmer_ids

PRETRAIN_WEIGHTS = "pretrain.safetensors"
PRETRAIN_CONFIG = "pretrain.json"
CHECKPOINT_STATE = "state.json"
IGNORE = -100
NSP_IS_NEXT, NSP_RANDOM = 0, 1  # HF BertForPreTraining convention
UNKNOWN = {"name": "unknown", "taxid": 0}


class TrainingError(HytaxError):
    """Missing inputs, an unusable checkpoint or labels that do not match the fragments."""


# --- options -------------------------------------------------------------------------------------


@dataclass
class Architecture:
    """Encoder shape (ignored when training starts from an existing encoder)."""

    hidden: int = 250
    layers: int = 12
    heads: int = 5
    intermediate: int = 1024
    dropout: float = 0.05
    window_nt: int = 1500  # longest input; longer fragments are cropped at random

    def bert_config(self) -> BertConfig:
        # Room for [CLS] A [SEP] B [SEP] at the full window.
        return BertConfig(hidden=self.hidden, layers=self.layers, heads=self.heads,
                          intermediate=self.intermediate, dropout=self.dropout,
                          max_positions=self.window_nt // 3 + 3)


# The project's model sizes and their learning rates (pre-training, fine-tuning): small and
# paper from tools/train_gpu.sh, which trained the shipped model; tiny for tests and the
# pipeline's test_train profile.
SIZES: dict[str, tuple[Architecture, float, float]] = {
    "tiny": (Architecture(hidden=64, layers=2, heads=2, intermediate=256), 2e-3, 1e-3),
    "small": (Architecture(hidden=128, layers=6, heads=4, intermediate=512), 1e-3, 5e-4),
    "paper": (Architecture(hidden=250, layers=12, heads=5, intermediate=1024), 4e-4, 2e-4),
}


def recommended_lr(mode: str, hidden: int) -> float:
    """The learning rate of the size nearest in width (`mode`: pretrain or finetune)."""
    _, pre, fine = min(SIZES.values(), key=lambda s: abs(s[0].hidden - hidden))
    return pre if mode == "pretrain" else fine


@dataclass
class LoopOptions:
    """Optimisation, stopping, checkpoints and resources: what the training loop needs."""

    batch_size: int = 32
    lr: float | None = None  # None: recommended_lr for the model's width
    weight_decay: float = 0.01
    warmup: float = 0.05  # steps, or a fraction of all steps if below 1
    schedule: str = "linear"  # linear | cosine
    decay_by_time: bool = False  # with time_limit: decay over the time (or steps, if sooner)
    max_epochs: int = 16
    max_steps: int = 0  # 0: no limit
    eval_every: int = 0  # validate every K steps (0: after every epoch)
    eval_minutes: float = 0  # also validate this often (0: no), for learning curves
    val_max: int = 0  # validate (and calibrate) on at most this many fragments (0: all)
    patience: int = 3  # stop after this many validations without a lower validation loss
    time_limit: float = 0  # minutes of training (0: no limit)
    time_limit_total: bool = False  # the time limit covers all resumed runs together
    checkpoint_minutes: float = 0  # also checkpoint this often between validations (0: no)
    seed: int = 1
    resume: str = "no"  # no | yes | auto (when the checkpoint is for the same data/settings)
    threads: int = 0  # torch CPU threads (0: torch's default)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 weights)
    progress: str = "auto"  # auto | on | off
    log_every: int = 50  # without a progress bar, a line every N steps


@dataclass
class TrainData:
    """A `hytax fragments` folder, or the files one by one (they win over the folder's)."""

    folder: Path | None = None
    train: Path | None = None
    val: Path | None = None
    train_labels: Path | None = None
    val_labels: Path | None = None

    def path(self, split: str, labels: bool = False) -> Path | None:
        given = getattr(self, f"{split}_labels" if labels else split)
        if given is not None or self.folder is None:
            return given
        return self.folder / (f"{split}.labels.tsv" if labels else f"{split}.fa")


@dataclass
class PretrainOptions:
    data: TrainData
    outdir: Path
    workdir: Path | None = None  # checkpoint and metrics log (default: outdir)
    architecture: Architecture = field(default_factory=Architecture)
    encoder: Path | None = None  # start from this encoder: a pretrain output or a model folder
    loop: LoopOptions = field(default_factory=LoopOptions)


@dataclass
class FinetuneOptions:
    data: TrainData
    outdir: Path
    taxdump: Path  # class names
    workdir: Path | None = None  # checkpoint and metrics log (default: outdir)
    architecture: Architecture = field(default_factory=Architecture)
    pretrained: Path | None = None  # encoder: a pretrain output or a model folder; None: scratch
    loop: LoopOptions = field(default_factory=LoopOptions)
    head: str = "all_in_one"  # all_in_one | flat | nested
    ranks: list[str] = field(default_factory=lambda: list(RANKS))
    min_class_count: int = 100  # classes with fewer training fragments go to "unknown"
    target_precision: float = 0.85  # per-rank confidence thresholds reach this on validation
    max_open_rate: float = 0.05  # abstention: answers allowed on taxa that are not classes
    name: str = "hytax"
    description: str = ""
    taxonomy_release: str = "NCBI taxdump"


# --- fragments and batches -----------------------------------------------------------------------


@dataclass
class Fragments:
    ids: list[str]
    seqs: list[str]
    labels: np.ndarray | None = None  # [N, ranks] class indices (fine-tuning only)

    def __len__(self) -> int:
        return len(self.seqs)


def read_fragments(path: Path) -> Fragments:
    records = list(read_records(path))
    return Fragments([r.id for r in records], [r.seq for r in records])


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Batches of (nearly) equal-length fragments in random order, deterministic per epoch.

    A random permutation is sorted stably by length, so equal lengths stay shuffled among
    themselves, then cut into batches whose order is shuffled again.
    """
    rng = np.random.default_rng([seed, epoch, 0])
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def fragment_tokens(
    seq: str, window_nt: int, rng: np.random.Generator | None, flip: bool = False
) -> np.ndarray:
    """3-mer ids of a fragment, on a random strand and crop when `rng` is given (augmentation)."""
    if flip:
        seq = reverse_complement(seq)
    if len(seq) > window_nt:
        start = int(rng.integers(0, len(seq) - window_nt + 1)) if rng is not None else 0
        seq = seq[start : start + window_nt]
    return kmer_ids(seq)


def pad_stack(rows: list[np.ndarray]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def classification_batch(
    seqs: list[str], window_nt: int, rng: np.random.Generator | None
) -> torch.Tensor:
    """[CLS] + 3-mers, padded; with `rng`, each fragment on a random strand (RC augmentation)."""
    flips = rng.random(len(seqs)) < 0.5 if rng is not None else [False] * len(seqs)
    rows = [
        np.concatenate(([CLS], fragment_tokens(s, window_nt, rng, bool(f))))
        for s, f in zip(seqs, flips, strict=True)
    ]
    return pad_stack(rows)


# --- pre-training inputs -------------------------------------------------------------------------


def nsp_batch(
    token_rows: list[np.ndarray], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`[CLS] A [SEP] B [SEP]` from the two halves of each fragment.

    Half of the time B is replaced by the second half of another fragment of the batch (label
    NSP_RANDOM). Returns tokens, segment ids (0 for [CLS] A [SEP], 1 for B [SEP]) and NSP labels.
    """
    n = len(token_rows)
    halves = [(r[: len(r) // 2], r[len(r) // 2 :]) for r in token_rows]
    rows, segs, labels = [], [], []
    for i, (a, b) in enumerate(halves):
        label = NSP_IS_NEXT
        if n > 1 and rng.random() < 0.5:
            b = halves[(i + int(rng.integers(1, n))) % n][1]
            label = NSP_RANDOM
        rows.append(np.concatenate(([CLS], a, [SEP], b, [SEP])))
        segs.append(np.concatenate((np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64))))
        labels.append(label)
    return pad_stack(rows), pad_stack(segs), torch.tensor(labels)


def mask_tokens(
    tokens: torch.Tensor, generator: torch.Generator, rate: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `rate` of the 3-mer positions; of those 80 % [MASK], 10 % a random
    3-mer, 10 % unchanged. Labels are IGNORE elsewhere.

    Special tokens are never picked, and neither is [UNK]: an ambiguous 3-mer carries no
    sequence to recover, so predicting it would only teach the model to copy N-runs.
    """
    eligible = tokens >= N_SPECIAL
    chosen = (torch.rand(tokens.shape, generator=generator) < rate) & eligible
    labels = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))
    roll = torch.rand(tokens.shape, generator=generator)
    inputs = tokens.clone()
    inputs[chosen & (roll < 0.8)] = MASK
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    random_ids = torch.randint(N_SPECIAL, len(VOCAB), tokens.shape, generator=generator)
    inputs[swap] = random_ids[swap]
    return inputs, labels


# --- fine-tuning labels --------------------------------------------------------------------------


def build_classes(
    labels: list[dict[str, int]], ranks: list[str], min_count: int, names: Callable[[int], str]
) -> dict[str, list[dict]]:
    """Per rank: taxa with >= `min_count` fragments, then `unknown` (taxid 0) last.

    `parent` indexes the rank above; a class whose parent taxon is not a class (or is unknown)
    points to the unknown class of the rank above. The top rank's parent is 0.
    """
    classes: dict[str, list[dict]] = {}
    for r, rank in enumerate(ranks):
        counts = Counter(lab[rank] for lab in labels)
        kept = [t for t, n in counts.items() if t != 0 and n >= min_count]
        parent_of: dict[int, int] = {}
        if r > 0:
            above = classes[ranks[r - 1]]
            index = {c["taxid"]: i for i, c in enumerate(above) if c["taxid"] != 0}
            unknown_above = len(above) - 1
            votes: dict[int, Counter[int]] = defaultdict(Counter)
            for lab in labels:
                votes[lab[rank]][lab[ranks[r - 1]]] += 1
            for t in kept:
                parent_of[t] = index.get(votes[t].most_common(1)[0][0], unknown_above)
            entries = [{"name": names(t), "taxid": int(t), "parent": parent_of[t]} for t in kept]
            entries.sort(key=lambda c: (c["parent"], c["name"]))
            entries.append({**UNKNOWN, "parent": unknown_above})
        else:
            entries = sorted(({"name": names(t), "taxid": int(t), "parent": 0} for t in kept),
                             key=lambda c: c["name"])
            entries.append({**UNKNOWN, "parent": 0})
        classes[rank] = entries
    return classes


def label_matrix(
    labels: list[dict[str, int]], ranks: list[str], classes: dict[str, list[dict]]
) -> np.ndarray:
    """Class index per fragment and rank; taxa that are not classes map to `unknown`."""
    out = np.empty((len(labels), len(ranks)), dtype=np.int64)
    for r, rank in enumerate(ranks):
        index = {c["taxid"]: i for i, c in enumerate(classes[rank])}
        unknown = len(classes[rank]) - 1
        out[:, r] = [index.get(lab[rank], unknown) if lab[rank] else unknown for lab in labels]
    return out


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """w_i = N / (C * n_i) over the C classes present (paper, eq. 1); absent classes get 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def taxonomy_loss(
    logps: list[torch.Tensor], y: torch.Tensor, weights: list[torch.Tensor]
) -> torch.Tensor:
    """Sum over ranks of the class-weighted NLL, averaged over fragments (Keras class_weight)."""
    total = logps[0].new_zeros(())
    for r, (logp, w) in enumerate(zip(logps, weights, strict=True)):
        target = y[:, r]
        total = total + (w[target] * F.nll_loss(logp, target, reduction="none")).mean()
    return total


# --- checkpoints (safetensors + JSON) ------------------------------------------------------------


@dataclass
class LoopState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val_loss: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    seconds: float = 0.0  # training wall time, summed over resumed runs
    finished: bool = False
    history: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)  # the step of every resume


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer state into named tensors plus JSON (safetensors holds no nesting)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    state: dict[int, dict] = defaultdict(dict)
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, key = flat.split(".", 1)
        state[int(pid)][key] = value
    optimizer.load_state_dict({"state": dict(state), "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState,
    best: dict[str, torch.Tensor] | None, extra: dict,
) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(_cpu(model.state_dict()), folder / "model.safetensors.tmp")
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    save_file(opt_tensors, folder / "optimizer.safetensors.tmp")
    if best is not None:
        save_file(best, folder / "best.safetensors.tmp")
    meta = {"loop": asdict(state), "optimizer": opt_meta, **extra}
    (folder / f"{CHECKPOINT_STATE}.tmp").write_text(json.dumps(meta, indent=1) + "\n")
    # Rename only when every file is written, so an interrupted save leaves the last good one.
    for tmp in folder.glob("*.tmp"):
        tmp.replace(tmp.with_suffix(""))


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[LoopState, dict[str, torch.Tensor] | None, dict]:
    from safetensors.torch import load_file

    if not (folder / CHECKPOINT_STATE).is_file():
        raise TrainingError(f"--resume: no checkpoint in {folder}")
    meta = json.loads((folder / CHECKPOINT_STATE).read_text())
    model.load_state_dict(load_file(folder / "model.safetensors"))
    restore_optimizer(optimizer, load_file(folder / "optimizer.safetensors"), meta["optimizer"])
    best_path = folder / "best.safetensors"
    best = load_file(best_path) if best_path.is_file() else None
    return LoopState(**meta["loop"]), best, meta


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class Job:
    """What differs between pre-training and fine-tuning; the loop does the rest."""

    model: nn.Module
    train_lengths: np.ndarray
    step_loss: Callable[[np.ndarray, np.random.Generator, torch.Generator], torch.Tensor]
    validate: Callable[[], dict] | None
    extra: dict  # stored in the checkpoint, checked on resume
    lr: float  # peak learning rate


def lr_factor(
    step: int, warmup: int, total: int, schedule: str, time_share: float = 0.0,
    time_warmup: float = 0.0,
) -> float:
    """Warm-up, then decay over the steps or, if further along, over the time (`time_share`).

    With `time_warmup` (a share of the time) the warm-up also ends when that share of the time
    has passed, if sooner than `warmup` steps: a run stopped by its time limit may never reach
    a step count taken as a fraction of its epochs.
    """
    warm = (step + 1) / warmup if warmup else 1.0
    if time_warmup:
        warm = max(warm, time_share / time_warmup)
        time_share = (time_share - time_warmup) / (1 - time_warmup)
    if warm < 1:
        return warm
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_share))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress


class Progress:
    """tqdm when installed and wanted, else a plain line every `every` steps."""

    def __init__(self, mode: str, total: int, initial: int, every: int) -> None:
        self.bar = None
        self.every = every
        want = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        if want:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=initial, unit="step", file=sys.stderr)
            except ImportError:
                pass

    def update(self, step: int, loss: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", frag_s=f"{rate:.0f}")
        elif self.every and step % self.every == 0:
            print(f"step {step}  loss {loss:.4f}  {rate:.1f} fragments/s", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_loop(
    job: Job, loop: LoopOptions, workdir: Path, device: torch.device
) -> tuple[LoopState, dict]:
    """Train until max epochs/steps, the time limit or early stop; return the state and the
    best weights. Checkpoints go to WORKDIR/checkpoint, metrics to WORKDIR/metrics.jsonl."""
    model = job.model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    lr = job.lr
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": loop.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=lr,
    )
    ckpt_dir = workdir / "checkpoint"
    metrics_path = workdir / "metrics.jsonl"
    workdir.mkdir(parents=True, exist_ok=True)
    state, best = LoopState(), None
    if _should_resume(loop.resume, ckpt_dir, job.extra):
        state, best, meta = load_checkpoint(ckpt_dir, model, optimizer)
        if meta.get("job") != job.extra.get("job"):
            raise TrainingError(f"{ckpt_dir}: checkpoint is for {meta.get('job')}")
        state.resumed_at.append(state.step)
        print(f"resuming at step {state.step} (epoch {state.epoch + 1}) from {ckpt_dir}",
              file=sys.stderr)
    else:
        # A fresh start: nothing of an earlier run may be resumed or logged with this one.
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        metrics_path.unlink(missing_ok=True)

    per_epoch = math.ceil(len(job.train_lengths) / loop.batch_size)
    total = loop.max_steps or per_epoch * loop.max_epochs
    by_time = bool(loop.decay_by_time and loop.time_limit)
    time_warmup = loop.warmup if by_time and loop.warmup < 1 else 0.0
    warmup = int(loop.warmup if loop.warmup >= 1 else loop.warmup * total)
    progress = Progress(loop.progress, total, state.step, loop.log_every)
    t0, seen, losses = time.monotonic(), 0, []
    clock, seconds_before = time.monotonic(), state.seconds
    limit_s = loop.time_limit * 60
    budget_s = limit_s - seconds_before if loop.time_limit_total else limit_s
    deadline = clock + budget_s if loop.time_limit else math.inf
    last_save = last_eval = clock
    eval_gap = loop.eval_minutes * 60  # grows with slow validations, see evaluate_now

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=loop.precision == "bf16")

    def save() -> None:
        nonlocal last_save
        state.seconds = round(seconds_before + time.monotonic() - clock, 1)
        save_checkpoint(ckpt_dir, model, optimizer, state, best, job.extra)
        last_save = time.monotonic()

    def early_stop() -> bool:
        return job.validate is not None and state.bad_evals >= loop.patience

    def evaluate_now() -> bool:
        """Validate, log, checkpoint; True when training should stop early."""
        nonlocal best, losses, seen, t0, last_eval, eval_gap
        if state.history and state.history[-1]["step"] == state.step:
            # Already validated at this step (epoch end on an --eval-every multiple).
            return early_stop()
        record = {"epoch": state.epoch + 1, "step": state.step,
                  "train_loss": float(np.mean(losses)) if losses else None,
                  "lr": optimizer.param_groups[0]["lr"],
                  "fragments_per_s": round(seen / max(1e-9, time.monotonic() - t0), 2)}
        if job.validate is not None:
            started = time.monotonic()
            model.eval()
            with torch.no_grad(), autocast():
                record.update(job.validate())
            model.train()
            # timed validations take at most a fifth of the time, however slow the device
            eval_gap = max(loop.eval_minutes * 60, 4 * (time.monotonic() - started))
        val_loss = record.get("val_loss", record["train_loss"] or math.inf)
        if val_loss < state.best_val_loss:
            state.best_val_loss, state.best_step, state.bad_evals = val_loss, state.step, 0
            best = _cpu(model.state_dict())
        else:
            state.bad_evals += 1
        state.history.append(record)
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        save()
        losses, seen, t0 = [], 0, time.monotonic()
        last_eval = t0
        return early_stop()

    def at_limit() -> bool:
        return (bool(loop.max_steps) and state.step >= loop.max_steps) or (
            time.monotonic() > deadline
        )

    model.train()
    # A resumed run whose budget is spent (or that had stopped early) trains no further.
    stop = bool(state.step) and (at_limit() or early_stop())
    while not stop and state.epoch < loop.max_epochs:
        batches = epoch_batches(job.train_lengths, loop.batch_size, loop.seed, state.epoch)
        for b in range(state.batch_in_epoch, len(batches)):
            # the schedule runs over the whole time limit, resumed runs included
            spent = time.monotonic() - clock + (seconds_before if loop.time_limit_total else 0)
            share = spent / limit_s if by_time else 0.0
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(state.step, warmup, total, loop.schedule, share,
                                             time_warmup)
            rng = np.random.default_rng([loop.seed, state.epoch, b + 1])
            gen = torch.Generator().manual_seed(loop.seed * 1_000_003 + state.step)
            with autocast():
                loss = job.step_loss(batches[b], rng, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state.step += 1
            state.batch_in_epoch = b + 1
            seen += len(batches[b])
            losses.append(loss.item())
            progress.update(state.step, losses[-1], seen / max(1e-9, time.monotonic() - t0))
            limit, now = at_limit(), time.monotonic()
            if not limit and (
                (loop.eval_every and state.step % loop.eval_every == 0)
                or (loop.eval_minutes and now - last_eval > eval_gap)
            ):
                # a validation that ran into the time limit is the last one
                stop = evaluate_now() or at_limit()
            elif loop.checkpoint_minutes and now - last_save > loop.checkpoint_minutes * 60:
                save()
            if stop or limit:
                stop = True
                break
        else:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            stop = evaluate_now()
            continue
        if losses or not state.history:
            evaluate_now()
        break
    state.finished = True
    save()
    progress.close()
    return state, best if best is not None else _cpu(model.state_dict())


def _should_resume(mode: str, ckpt_dir: Path, extra: dict) -> bool:
    """`yes`: resume (an error without a checkpoint); `auto`: resume when the checkpoint was
    written for the same data and settings (its fingerprint), else start over."""
    if mode == "yes":
        return True
    if mode != "auto" or not (ckpt_dir / CHECKPOINT_STATE).is_file():
        return False
    meta = json.loads((ckpt_dir / CHECKPOINT_STATE).read_text())
    if meta.get("fingerprint") == extra.get("fingerprint"):
        return True
    print(f"{ckpt_dir}: checkpoint is for other data or settings; training from step 0",
          file=sys.stderr)
    return False


def fingerprint(files: list[Path | None], settings: dict) -> str:
    """What a checkpoint must match to be resumed: the input files' contents and the settings
    that shape training (not paths: a resumed Nextflow task stages them elsewhere)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        if path is None:
            continue
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def setup(loop: LoopOptions) -> torch.device:
    if loop.threads:
        torch.set_num_threads(loop.threads)
    torch.manual_seed(loop.seed)
    if loop.device == "cuda" or (loop.device == "auto" and torch.cuda.is_available()):
        # TF32 for what stays in fp32: far faster matrix products, precise enough for training.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda")
    keep_freed_cpu_memory()
    return torch.device("cpu")


def load_encoder(folder: Path) -> tuple[BertConfig, dict[str, torch.Tensor], dict]:
    """Encoder config, weights and provenance from a `hytax pretrain` output or a model folder
    (then `info` holds the model's name and window)."""
    if (folder / PRETRAIN_CONFIG).is_file():
        return load_pretrained(folder)
    if not (folder / CONFIG_NAME).is_file():
        raise TrainingError(
            f"{folder}: neither a `hytax pretrain` output ({PRETRAIN_CONFIG}) nor a model "
            f"folder ({CONFIG_NAME})"
        )
    from safetensors.torch import load_file

    config = json.loads((folder / CONFIG_NAME).read_text())
    if list(config.get("vocab", VOCAB)) != list(VOCAB):
        raise TrainingError(f"{folder / CONFIG_NAME}: vocabulary differs from hytax's 3-mers")
    weights = load_file(folder / WEIGHTS_NAME)
    state = {k.removeprefix("encoder."): v for k, v in weights.items()
             if k.startswith("encoder.")}
    info = {"format": "model", "name": config.get("name"),
            "window_nt": int(config.get("window_nt", 1500))}
    return BertConfig(**config["architecture"]), state, info


def describe_encoder(info: dict | None) -> str:
    """Where an encoder came from, for the model card: a model, pre-training, or nothing."""
    if info is None:
        return "random weights"
    if info.get("format") == "model":
        return f"the encoder of the model {info.get('name')}"
    training = info.get("training", {})
    return (f"pre-trained on these fragments ({training.get('steps')} steps) from "
            f"{training.get('start', 'random weights')}")


def _encoder_file(folder: Path | None) -> Path | None:
    if folder is None:
        return None
    pretrained = folder / PRETRAIN_WEIGHTS
    return pretrained if pretrained.is_file() else folder / WEIGHTS_NAME


# --- pretrain ------------------------------------------------------------------------------------


def pretrain(options: PretrainOptions) -> dict:
    loop = options.loop
    device = setup(loop)
    train_path, val_path = options.data.path("train"), options.data.path("val")
    if train_path is None:
        raise TrainingError("give --data or --train")
    train = read_fragments(train_path)
    val = read_fragments(val_path) if val_path and val_path.is_file() else None
    if val is not None:
        val, _ = val_subset(val, [], loop.val_max, loop.seed)
    encoder_info = None
    if options.encoder is not None:
        cfg, encoder_state, encoder_info = load_encoder(options.encoder)
        # [CLS] A [SEP] B [SEP] must fit the encoder's positions.
        window_nt = min(int(encoder_info.get("window_nt", 1500)), 3 * (cfg.max_positions - 3))
    else:
        cfg, encoder_state, window_nt = options.architecture.bert_config(), None, \
            options.architecture.window_nt
    model = BertPretraining(cfg)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)

    def losses_of(seqs: list[str], rng: np.random.Generator, gen: torch.Generator,
                  augment: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
        flips = rng.random(len(seqs)) < 0.5 if augment else np.zeros(len(seqs), bool)
        rows = [fragment_tokens(s, window_nt, rng if augment else None, bool(f))
                for s, f in zip(seqs, flips, strict=True)]
        tokens, segments, nsp = nsp_batch(rows, rng)
        inputs, mlm_labels = mask_tokens(tokens, gen)
        mlm_logits, nsp_logits = model(inputs.to(device), segments.to(device))
        mlm_labels, nsp = mlm_labels.to(device), nsp.to(device)
        mlm = F.cross_entropy(mlm_logits.flatten(0, 1), mlm_labels.flatten(),
                              ignore_index=IGNORE, reduction="sum")
        n_masked = (mlm_labels != IGNORE).sum()
        nsp_loss = F.cross_entropy(nsp_logits, nsp, reduction="sum")
        hits = {"mlm_correct": int((mlm_logits.argmax(-1) == mlm_labels).sum()),
                "masked": int(n_masked),
                "nsp_correct": int((nsp_logits.argmax(-1) == nsp).sum())}
        return mlm, nsp_loss, hits

    lengths = np.array([len(s) for s in train.seqs])

    def step_loss(idx: np.ndarray, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
        mlm, nsp_loss, hits = losses_of([train.seqs[i] for i in idx], rng, gen, augment=True)
        return mlm / max(1, hits["masked"]) + nsp_loss / len(idx)

    def validate() -> dict:
        assert val is not None
        totals: Counter[str] = Counter()
        val_lengths = np.array([len(s) for s in val.seqs])
        for b, idx in enumerate(eval_batches(val_lengths, loop.batch_size)):
            rng = np.random.default_rng([loop.seed, 10**6, b])
            gen = torch.Generator().manual_seed(loop.seed + b)
            mlm, nsp_loss, hits = losses_of([val.seqs[i] for i in idx], rng, gen, augment=False)
            totals.update(mlm=float(mlm), nsp=float(nsp_loss), n=len(idx), **hits)
        mlm_loss = totals["mlm"] / max(1, totals["masked"])
        nsp_loss = totals["nsp"] / max(1, totals["n"])
        return {"val_loss": mlm_loss + nsp_loss, "val_mlm_loss": mlm_loss,
                "val_nsp_loss": nsp_loss,
                "val_mlm_accuracy": totals["mlm_correct"] / max(1, totals["masked"]),
                "val_nsp_accuracy": totals["nsp_correct"] / max(1, totals["n"])}

    lr = loop.lr or recommended_lr("pretrain", cfg.hidden)
    extra = {"job": "pretrain", "architecture": cfg.to_dict(), "window_nt": window_nt}
    extra["fingerprint"] = fingerprint(
        [train_path, val_path if val else None, _encoder_file(options.encoder)],
        {**extra, **_trajectory(loop, lr)},
    )
    job = Job(model, lengths, step_loss, validate if val and len(val) else None, extra, lr)
    started = time.time()
    state, best = run_loop(job, loop, options.workdir or options.outdir, device)
    from safetensors.torch import save_file

    options.outdir.mkdir(parents=True, exist_ok=True)
    save_file(best, options.outdir / PRETRAIN_WEIGHTS, metadata={"format": "hytax-pretrain"})
    info = {
        "format": "hytax-pretrain",
        "architecture": cfg.to_dict(),
        "vocab": list(VOCAB),
        "window_nt": window_nt,
        "training": {"train": str(train_path), "val": str(val_path) if val else None,
                     "encoder": str(options.encoder) if options.encoder else None,
                     "start": describe_encoder(encoder_info),
                     "fragments": len(train), "steps": state.step, "epochs": state.epoch,
                     "best_step": state.best_step, "seed": loop.seed, "lr": lr,
                     "batch_size": loop.batch_size, "resumed_at": state.resumed_at,
                     "seconds": round(time.time() - started, 1),
                     "training_seconds": state.seconds,
                     "val_metrics": _best_record(state)},
    }
    (options.outdir / PRETRAIN_CONFIG).write_text(json.dumps(info, indent=2) + "\n")
    print(f"pre-trained encoder written to {options.outdir}", file=sys.stderr)
    return info


def _trajectory(loop: LoopOptions, lr: float) -> dict:
    """The loop settings that change which weights a given step holds (for the fingerprint):
    not the limits, so a run may be resumed with more time or steps."""
    return {"lr": lr, "batch_size": loop.batch_size, "seed": loop.seed,
            "weight_decay": loop.weight_decay, "schedule": loop.schedule,
            "warmup": loop.warmup, "precision": loop.precision, "val_max": loop.val_max}


def _best_record(state: LoopState) -> dict | None:
    return next((r for r in state.history if r["step"] == state.best_step), None)


def load_pretrained(folder: Path) -> tuple[BertConfig, dict[str, torch.Tensor], dict]:
    """Encoder config and weights (the `encoder.` part of a pre-training checkpoint)."""
    from safetensors.torch import load_file

    info_path, weights = folder / PRETRAIN_CONFIG, folder / PRETRAIN_WEIGHTS
    if not info_path.is_file() or not weights.is_file():
        raise TrainingError(f"{folder}: not a `hytax pretrain` output ({PRETRAIN_CONFIG} missing)")
    info = json.loads(info_path.read_text())
    state = {k.removeprefix("encoder."): v for k, v in load_file(weights).items()
             if k.startswith("encoder.")}
    return BertConfig(**info["architecture"]), state, info


# --- finetune ------------------------------------------------------------------------------------


def val_subset(
    val: Fragments, labels: list[dict[str, int]], most: int, seed: int
) -> tuple[Fragments, list[dict[str, int]]]:
    """At most `most` validation fragments (and their labels, if any), a fixed random subset:
    on a CPU, validating tens of thousands of fragments would eat the training time."""
    if not most or len(val) <= most:
        return val, labels
    keep = np.sort(np.random.default_rng([seed, 7]).choice(len(val), most, replace=False))
    subset = Fragments([val.ids[i] for i in keep], [val.seqs[i] for i in keep])
    return subset, [labels[i] for i in keep] if labels else labels


def _labelled(fasta: Path, labels_path: Path) -> tuple[Fragments, list[dict[str, int]]]:
    frags = read_fragments(fasta)
    table = read_labels(labels_path)
    missing = [i for i in frags.ids if i not in table]
    if missing:
        raise TrainingError(f"{labels_path}: no labels for {len(missing)} reads, e.g. {missing[0]}")
    return frags, [table[i] for i in frags.ids]


def predict_logps(
    model: BertTax, frags: Fragments, window_nt: int, batch_size: int, device: torch.device
) -> list[torch.Tensor]:
    """Log-probabilities per rank for every fragment, in input order (forward strand)."""
    lengths = np.array([len(s) for s in frags.seqs])
    parts: list[tuple[np.ndarray, list[torch.Tensor]]] = []
    for idx in eval_batches(lengths, batch_size):
        tokens = classification_batch([frags.seqs[i] for i in idx], window_nt, None)
        parts.append((idx, [lp.cpu() for lp in model(tokens.to(device))]))
    n_ranks = len(parts[0][1])
    order = np.argsort(np.concatenate([idx for idx, _ in parts]))
    return [torch.cat([lps[r] for _, lps in parts])[order] for r in range(n_ranks)]


def finetune(options: FinetuneOptions) -> ModelBundle:
    from hytax.calibrate import CalibrationOptions, calibrate
    from hytax.taxonomy import Taxonomy

    loop = options.loop
    device = setup(loop)
    train_fa, val_fa = options.data.path("train"), options.data.path("val")
    train_lab, val_lab = options.data.path("train", labels=True), options.data.path("val", True)
    if train_fa is None or train_lab is None:
        raise TrainingError("give --data or --train and --train-labels")
    train, train_labels = _labelled(train_fa, train_lab)
    has_val = val_fa is not None and val_lab is not None and val_fa.is_file()
    val, val_labels = _labelled(val_fa, val_lab) if has_val else (Fragments([], []), [])
    val, val_labels = val_subset(val, val_labels, loop.val_max, loop.seed)

    taxonomy = Taxonomy.load(options.taxdump)
    ranks = list(options.ranks)
    classes = build_classes(train_labels, ranks, options.min_class_count, taxonomy.name)
    del taxonomy  # a full NCBI dump holds ~2 GB that training has better use for
    train.labels = label_matrix(train_labels, ranks, classes)
    val.labels = label_matrix(val_labels, ranks, classes) if len(val) else None
    weights = [class_weights(train.labels[:, r], len(classes[rank])).to(device)
               for r, rank in enumerate(ranks)]

    encoder_info = None
    if options.pretrained:
        bert_cfg, encoder_state, encoder_info = load_encoder(options.pretrained)
        window_nt = int(encoder_info.get("window_nt", options.architecture.window_nt))
    else:
        bert_cfg, encoder_state = options.architecture.bert_config(), None
        window_nt = options.architecture.window_nt
    model = BertTax(bert_cfg, head_config(options.head, ranks, classes))
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)

    def step_loss(idx: np.ndarray, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
        tokens = classification_batch([train.seqs[i] for i in idx], window_nt, rng)
        y = torch.from_numpy(train.labels[idx]).to(device)
        return taxonomy_loss(model(tokens.to(device)), y, weights)

    def validate() -> dict:
        logps = predict_logps(model, val, window_nt, loop.batch_size * 2, device)
        return val_metrics(logps, torch.from_numpy(val.labels), ranks, weights)

    lr = loop.lr or recommended_lr("finetune", bert_cfg.hidden)
    extra = {"job": "finetune", "classes": classes, "architecture": bert_cfg.to_dict(),
             "head": options.head, "window_nt": window_nt}
    extra["fingerprint"] = fingerprint(
        [train_fa, train_lab, val_fa if has_val else None, val_lab if has_val else None,
         _encoder_file(options.pretrained)],
        {**extra, **_trajectory(loop, lr)},
    )
    job = Job(model, np.array([len(s) for s in train.seqs]), step_loss,
              validate if len(val) else None, extra, lr)
    state, best = run_loop(job, loop, options.workdir or options.outdir, device)
    model.load_state_dict(best)
    model.eval()

    calibration: dict = {"method": "none", "temperature": dict.fromkeys(ranks, 1.0)}
    final_val = None
    if len(val):
        with torch.no_grad():
            logps = predict_logps(model, val, window_nt, loop.batch_size * 2, device)
        y = torch.from_numpy(val.labels)
        final_val = val_metrics(logps, y, ranks, weights)
        calibration = calibrate(
            [lp.exp().numpy() for lp in logps], val.labels,
            np.array([len(seq) for seq in val.seqs]), ranks,
            CalibrationOptions(options.max_open_rate, options.target_precision),
            genera=np.array([lab["genus"] for lab in val_labels]),
        )
        calibration["fitted_on"] = str(val_fa)
        calibration["strands"] = "one"

    fragments_info = _fragments_info(options.data.folder)
    config = {
        "name": options.name,
        "description": options.description,
        "head": {"kind": options.head, "ranks": ranks},
        "classes": classes,
        "vocab": list(VOCAB),
        "window_nt": window_nt,
        "taxonomy": {"source": Path(options.taxdump).name, "release": options.taxonomy_release},
        "calibration": calibration,
        "training": {
            "data": {"train": str(train_fa), "train_labels": str(train_lab),
                     "val": str(val_fa) if len(val) else None,
                     "val_labels": str(val_lab) if len(val) else None,
                     "source": fragments_info.get("reference") or fragments_info.get("genomes")},
            "splits": {"train": len(train), "val": len(val),
                       "split": fragments_info.get("split"),
                       "genera": fragments_info.get("genera"),
                       "fragment_lengths": fragments_info.get("lengths")},
            "heldout_genera_file": fragments_info.get("heldout_genera_file"),
            "pretrained": str(options.pretrained) if options.pretrained else None,
            "encoder": describe_encoder(encoder_info),
            "pretrain_steps": (encoder_info or {}).get("training", {}).get("steps"),
            "epochs": state.epoch, "steps": state.step, "best_step": state.best_step,
            "resumed_at": state.resumed_at,
            "seed": loop.seed, "batch_size": loop.batch_size, "lr": lr,
            "min_class_count": options.min_class_count,
            "seconds": state.seconds,
            "device": f"{device.type}, {loop.precision}",
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "val_metrics": final_val,
        },
    }
    bundle = ModelBundle(model.cpu(), config)
    save_model(bundle, options.outdir)
    print(f"model written to {options.outdir}"
          + (f"; validation accuracy {final_val['val_accuracy']}" if final_val else ""),
          file=sys.stderr)
    return bundle


def val_metrics(
    logps: list[torch.Tensor], y: torch.Tensor, ranks: list[str], weights: list[torch.Tensor]
) -> dict:
    cpu_weights = [w.cpu() for w in weights]
    loss = float(taxonomy_loss(logps, y, cpu_weights))
    acc, balanced = {}, {}
    for r, rank in enumerate(ranks):
        pred, truth = logps[r].argmax(-1), y[:, r]
        acc[rank] = round(float((pred == truth).float().mean()), 4)
        per_class = [float((pred[truth == c] == c).float().mean()) for c in truth.unique()]
        balanced[rank] = round(float(np.mean(per_class)), 4)
    return {"val_loss": loss, "val_accuracy": acc, "val_balanced_accuracy": balanced}


def _fragments_info(data_dir: Path | None) -> dict:
    path = data_dir / "fragments.json" if data_dir else None
    return json.loads(path.read_text()) if path and path.is_file() else {}

