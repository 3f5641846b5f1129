"""Calibration and abstention fitted on validation genera (`hytax calibrate`, and the end of
`hytax finetune`).

A model meets genera it never saw in every real sample, and there its probabilities mean less
than on its training genera. So everything here is fitted on fragments of *validation genera*:

- **temperature** per rank, p ∝ p_raw^(1/T), minimising the validation NLL, where p_raw is the
  probability the model serves (the mean over strands and windows of its softmax);
- **abstention** per rank: the lowest confidence above which at most `max_open_rate` of the
  validation fragments whose taxon at that rank is *not a class* (an unseen genus, a phylum the
  model lacks) are still given a taxon. Below it the prediction says `unknown`: the model cannot
  tell a genus it knows from one it does not, so it answers neither;
- **precision thresholds** per rank: the lowest confidence at which the validation fragments
  answered reach `target_precision` (what the pipeline's `--min_confidence` is chosen from).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hytax.errors import HytaxError

if TYPE_CHECKING:
    from hytax.predict import PredictOptions

# abstention thresholds per read length: short reads (below 1000 nt) and long ones
LENGTH_EDGES = (1000,)
GENUS_FOLDS = 5


@dataclass(frozen=True)
class CalibrationOptions:
    max_open_rate: float = 0.05  # answers allowed on fragments whose taxon is not a class
    target_precision: float = 0.85  # per-rank precision thresholds


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T), renormalised over the last axis (classes)."""
    if temperature == 1.0:
        return probs
    logp = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=-1, keepdims=True)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the NLL of tempered(probs, T) at the true classes (Guo et al., 2017).

    A log-spaced grid then a finer one: a 1-D convex problem where a grid is robust and needs
    no step size.
    """
    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(t: float) -> float:
        z = logp / t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return round(float(min(fine, key=nll)), 4)


def abstain_threshold(
    confidence: np.ndarray, top: np.ndarray, y: np.ndarray, unknown: int, max_open_rate: float
) -> dict | None:
    """The lowest confidence t such that at most `max_open_rate` of the fragments whose true
    class is `unknown` get a class other than `unknown` with confidence >= t; None when no
    fragment's taxon is outside the classes (nothing to fit on)."""
    outside = y == unknown
    n_out = int(outside.sum())
    if n_out == 0:
        return None
    invented = np.sort(confidence[outside & (top != unknown)])[::-1]
    allowed = int(np.floor(max_open_rate * n_out))
    t = 0.0 if len(invented) <= allowed else _just_above(float(invented[allowed]))
    inside = ~outside
    answered = inside & (top != unknown) & (confidence >= t)
    return {
        "min_confidence": t,
        "open_rate": round(float(np.mean((top[outside] != unknown)
                                         & (confidence[outside] >= t))), 4),
        "open_fragments": n_out,
        "known_answered": round(float(answered.sum() / max(1, inside.sum())), 4),
        "known_fragments": int(inside.sum()),
    }


def _just_above(value: float) -> float:
    """The smallest 6-decimal number above `value`: fragments tied at the cut would let more
    through than allowed, and the config stores 6 decimals."""
    t = round(value, 6)
    while t <= value:
        t = round(t + 1e-6, 6)
    return t


def abstain_by_length(
    confidence: np.ndarray, top: np.ndarray, y: np.ndarray, unknown: int, lengths: np.ndarray,
    max_open_rate: float,
) -> dict | None:
    """`abstain_threshold` over all fragments, and for each read-length bin of LENGTH_EDGES
    (longer reads get higher confidences, so one cut would let long reads invent more); a bin
    without validation fragments outside the classes uses the overall cut."""
    overall = abstain_threshold(confidence, top, y, unknown, max_open_rate)
    if overall is None:
        return None
    bins = np.searchsorted(np.array(LENGTH_EDGES), lengths, side="right")
    by_length = []
    for b, below in enumerate([*LENGTH_EDGES, None]):
        inside = bins == b
        cut = abstain_threshold(confidence[inside], top[inside], y[inside], unknown,
                                max_open_rate)
        by_length.append({"below_nt": below, **(cut or {"min_confidence":
                                                         overall["min_confidence"]})})
    return {**overall, "by_length": by_length}


def held_out_open_rate(
    confidence: np.ndarray, top: np.ndarray, y: np.ndarray, unknown: int, lengths: np.ndarray,
    folds: np.ndarray, nominal: float,
) -> float:
    """Pooled over folds of genera: the share of a fold's fragments outside the classes given
    a taxon by thresholds fitted at `nominal` on the other folds."""
    given = outside = 0
    for k in np.unique(folds):
        fit, test = folds != k, folds == k
        cuts = abstain_by_length(confidence[fit], top[fit], y[fit], unknown, lengths[fit],
                                 nominal)
        open_ = test & (y == unknown)
        cut = np.array([cut_for(cuts, int(n)) for n in lengths[open_]])
        given += int(((top[open_] != unknown) & (confidence[open_] >= cut)).sum())
        outside += int(open_.sum())
    return given / max(1, outside)


def nominal_rate(
    confidence: np.ndarray, top: np.ndarray, y: np.ndarray, unknown: int, lengths: np.ndarray,
    genera: np.ndarray | None, target: float,
) -> float:
    """The open rate to fit at so that genera *not* used for fitting see at most `target`.

    Thresholds fitted on some genera let more through on others (each genus shifts the
    confidences its fragments get), so the rate is chosen by cross-validation over genera
    (GENUS_FOLDS folds, bisection); without genera, or too few, `target` itself."""
    if genera is None or len(np.unique(genera)) < 2 * GENUS_FOLDS:
        return target
    order = np.random.default_rng(0).permutation(np.unique(genera))
    fold_of = {g: i % GENUS_FOLDS for i, g in enumerate(order)}
    folds = np.array([fold_of[g] for g in genera])
    low, high = 0.0, target
    if held_out_open_rate(confidence, top, y, unknown, lengths, folds, high) <= target:
        return target
    for _ in range(12):
        mid = (low + high) / 2
        if held_out_open_rate(confidence, top, y, unknown, lengths, folds, mid) <= target:
            low = mid
        else:
            high = mid
    return round(low, 5)


def cut_for(abstain: dict | None, length: int) -> float:
    """The abstention threshold for a read of `length` nt (0: never abstain)."""
    if not abstain:
        return 0.0
    for entry in abstain.get("by_length", []):
        if entry["below_nt"] is None or length < entry["below_nt"]:
            return float(entry["min_confidence"])
    return float(abstain["min_confidence"])


def calibrate(
    probs: list[np.ndarray], y: np.ndarray, lengths: np.ndarray, ranks: list[str],
    options: CalibrationOptions, genera: np.ndarray | None = None,
) -> dict:
    """Temperatures, abstention and precision thresholds per rank from the served probabilities
    of validation fragments (`probs[r]`: fragments x classes, unknown last; `y`: fragments x
    ranks, class indices with taxa outside the classes at `unknown`; `lengths`: nt; `genera`:
    each fragment's genus taxid, for choosing the abstention rate across genera)."""
    from hytax.evaluate import confidence_threshold

    temperature: dict[str, float] = {}
    abstain: dict[str, dict | None] = {}
    precise: dict[str, dict | None] = {}
    for r, rank in enumerate(ranks):
        temperature[rank] = fit_temperature(probs[r], y[:, r])
        p = tempered(probs[r], temperature[rank])
        top, confidence = p.argmax(axis=1), p.max(axis=1)
        unknown = p.shape[1] - 1
        nominal = nominal_rate(confidence, top, y[:, r], unknown, lengths, genera,
                               options.max_open_rate)
        abstain[rank] = abstain_by_length(confidence, top, y[:, r], unknown, lengths, nominal)
        if abstain[rank] is not None:
            abstain[rank]["fitted_at_rate"] = nominal
        cuts = np.array([cut_for(abstain[rank], int(n)) for n in lengths])
        answered = (top != unknown) & (confidence >= cuts)
        # precision of what would be served: abstained answers are not answers
        precise[rank] = confidence_threshold(np.where(answered, confidence, 0.0),
                                             answered & (top == y[:, r]),
                                             options.target_precision)
    return {
        "method": "temperature",
        "applies_to": "p ∝ p_raw^(1/T) per rank, p_raw the mean over strands and windows of "
                      "the softmax",
        "temperature": temperature,
        "abstain": {
            "max_open_rate": options.max_open_rate,
            "meaning": "below min_confidence (of the read's length bin) the prediction is "
                       "'unknown', and so is every rank below. Fitted so that validation "
                       "fragments whose taxon is not a class are given one at most at "
                       "fitted_at_rate: the rate at which thresholds fitted on some validation "
                       "genera gave at most max_open_rate on the others (cross-validated over "
                       "genera)",
            "per_rank": abstain,
        },
        "thresholds": {
            "target_precision": options.target_precision,
            "meaning": "lowest calibrated confidence at which the validation fragments answered "
                       "reach the target precision (null: none does)",
            "per_rank": precise,
        },
    }


# --- the command ---------------------------------------------------------------------------------


def calibrate_model(
    model_dir: Path, fasta: Path, labels: Path, outdir: Path, options: CalibrationOptions,
    predict_options: PredictOptions,
) -> dict:
    """A copy of the model in `outdir` whose calibration is fitted on the validation fragments
    `fasta` (their genera must be unseen by the model: checked against its training genera)."""
    from hytax.data import read_labels
    from hytax.model import CONFIG_NAME, WEIGHTS_NAME, load_model
    from hytax.predict import Predictor
    from hytax.seqio import read_units
    from hytax.train import label_matrix

    bundle = load_model(model_dir)
    config = bundle.config
    bundle.config = {**config, "calibration": {}}  # serve raw probabilities
    table = read_labels(labels)
    ranks = bundle.ranks
    seen = _training_genera(bundle.config)
    overlap = sorted({lab["genus"] for lab in table.values()} & seen)
    if overlap:
        raise HytaxError(f"{labels}: genera that are classes of the model ({_show(overlap)}): "
                         "calibrate on genera it never saw")
    predictor = Predictor(bundle, predict_options)
    ids: list[str] = []
    rows: list[list[np.ndarray]] = []
    lengths: list[int] = []
    for row in predictor.rows(read_units(fasta, None)):
        if row.probs is None:
            continue
        if row.read_id not in table:
            raise HytaxError(f"{labels}: no labels for read '{row.read_id}' of {fasta}")
        ids.append(row.read_id)
        rows.append(row.probs)
        lengths.append(row.length)
    if not rows:
        raise HytaxError(f"{fasta}: no fragment with a valid 3-mer")
    probs = [np.stack([r[k] for r in rows]) for k in range(len(ranks))]
    y = label_matrix([table[i] for i in ids], ranks, bundle.config["classes"])
    calibration = calibrate(probs, y, np.array(lengths), ranks, options,
                            genera=np.array([table[i]["genus"] for i in ids]))
    calibration["fitted_on"] = str(fasta)
    calibration["fitted_on_genera"] = sorted({table[i]["genus"] for i in ids})
    calibration["strands"] = "both" if predict_options.both_strands else "one"

    outdir.mkdir(parents=True, exist_ok=True)
    if outdir.resolve() != model_dir.resolve():
        shutil.copyfile(model_dir / WEIGHTS_NAME, outdir / WEIGHTS_NAME)
        for extra in model_dir.iterdir():
            if extra.is_file() and extra.name not in (WEIGHTS_NAME, CONFIG_NAME):
                shutil.copyfile(extra, outdir / extra.name)
    (outdir / CONFIG_NAME).write_text(json.dumps({**config, "calibration": calibration},
                                                 indent=2) + "\n")
    for rank in ranks:
        a = calibration["abstain"]["per_rank"][rank]
        print(f"hytax calibrate: {rank}: T={calibration['temperature'][rank]}"
              + (f", abstain below {a['min_confidence']:.3f} (taxon given to {a['open_rate']:.1%}"
                 f" of {a['open_fragments']} fragments outside the classes; "
                 f"{a['known_answered']:.1%} of {a['known_fragments']} inside answered)"
                 if a else ", every validation taxon is a class"),
              file=sys.stderr)
    return calibration


def _training_genera(config: dict) -> set[int]:
    return {int(c["taxid"]) for c in config["classes"].get("genus", []) if c["taxid"]}


def _show(taxids: list[int], shown: int = 5) -> str:
    head = ", ".join(map(str, taxids[:shown]))
    return head + (f" and {len(taxids) - shown} more" if len(taxids) > shown else "")
