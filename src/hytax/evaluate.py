"""Scoring predictions against truth labels (`hytax evaluate`).

Per rank: average precision as in the BERTax paper (micro-averaged precision-recall over
confidence thresholds), mean per-class accuracy, the share of reads classified, a confusion
matrix, a PR curve and a reliability diagram.

How reads are scored (every truth read counts, in every metric):
- A read is *classified* at a rank when it has a prediction there: a `hytax predict` row whose
  name is not `NA`, or a `hytax merge` row whose source is not `none`. Reads without a
  prediction row, `NA` and `none` are *not predicted*: never correct, they lower recall (and
  accuracy) but not precision.
- Truth taxid 0 (no taxon at that rank, e.g. a virus without a 2013 phylum) is a class of its
  own, "unknown": the correct answer is taxid 0 (the model's `unknown` class). Predicting
  `unknown` for a read with a known truth is a wrong prediction, like any other wrong taxon.
- With `--model`, a truth taxon that is not one of the model's classes at that rank is scored as
  "unknown" (the only answer the model could give); the number of such reads is reported.
- Precision-recall: a threshold t keeps the classified reads with confidence >= t; precision is
  correct / kept, recall is correct / all truth reads. With `--probabilities` the curve is
  micro-averaged over every (read, class) probability (as sklearn's `average_precision_score`
  with average="micro"), otherwise it uses the top class and its confidence. AP is the step sum
  sum_k (R_k - R_{k-1}) P_k over distinct thresholds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hytax.data import RANKS, read_labels
from hytax.errors import HytaxError

UNCLASSIFIED = "unclassified"


class EvaluationError(HytaxError):
    """Unreadable predictions, truth or probabilities."""


@dataclass(frozen=True)
class Call:
    """One read's answer at one rank."""

    taxid: int
    confidence: float
    predicted: bool


# --- inputs --------------------------------------------------------------------------------------


def read_predictions(
    path: str | Path, ranks: list[str]
) -> tuple[str, dict[str, dict[str, Call]], dict[int, str]]:
    """Predictions as {read_id: {rank: Call}}; also the format and the names seen per taxid.

    The format is told by the header: `<rank>_source` (hytax merge) or `<rank>_prob`
    (hytax predict).
    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        cols = set(reader.fieldnames or [])
        if "read_id" not in cols:
            raise EvaluationError(f"{path}: no read_id column")
        if all(f"{r}_source" in cols for r in ranks):
            kind = "merge"
        elif all(f"{r}_prob" in cols for r in ranks):
            kind = "predict"
        else:
            raise EvaluationError(f"{path}: neither a hytax predict nor a hytax merge table")
        if "window" in cols:
            raise EvaluationError(f"{path}: per-window rows; predict with --windows mean")
        calls: dict[str, dict[str, Call]] = {}
        names: dict[int, str] = {}
        for row in reader:
            per_rank = {}
            for rank in ranks:
                taxid = int(row[f"{rank}_taxid"] or 0)
                if kind == "merge":
                    predicted = row[f"{rank}_source"] != "none"
                    confidence, name = float(row[f"{rank}_confidence"] or 0), row[f"{rank}_name"]
                else:
                    predicted = row[rank] != "NA"
                    confidence, name = float(row[f"{rank}_prob"] or 0), row[rank]
                per_rank[rank] = Call(taxid, confidence if predicted else 0.0, predicted)
                if predicted and name:
                    names.setdefault(taxid, name)
            if row["read_id"] in calls:
                raise EvaluationError(f"{path}: read {row['read_id']} appears twice")
            calls[row["read_id"]] = per_rank
    return kind, calls, names


def read_probabilities(
    path: str | Path, ranks: list[str], name_to_taxid: dict[str, dict[str, int]]
) -> dict[str, dict[str, dict[int, float]]]:
    """`hytax predict --probabilities` JSONL as {read_id: {rank: {taxid: probability}}}."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    with open(path) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationError(f"{path}: line {number}: {exc}") from None
            per_rank = {}
            for rank in ranks:
                probs: dict[int, float] = {}
                for name, p in record.get(rank, {}).items():
                    taxid = name_to_taxid.get(rank, {}).get(name)
                    if taxid is None:
                        raise EvaluationError(
                            f"{path}: line {number}: class '{name}' ({rank}) has no taxid; "
                            "give --model or --taxdump"
                        )
                    probs[taxid] = probs.get(taxid, 0.0) + float(p)
                per_rank[rank] = probs
            out[record["read_id"]] = per_rank
    return out


def model_classes(model_dir: Path) -> dict[str, list[dict]]:
    config = json.loads((model_dir / "config.json").read_text())
    return config["classes"]


# --- metrics -------------------------------------------------------------------------------------


def pr_curve(
    scores: np.ndarray, hits: np.ndarray, n_positive: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at each distinct score, highest threshold first."""
    if len(scores) == 0 or n_positive == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    s, h = scores[order], hits[order].astype(np.float64)
    tp = np.cumsum(h)
    kept = np.arange(1, len(s) + 1)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last position of each distinct score
    return tp[last] / kept[last], tp[last] / n_positive, s[last]


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Step-wise area: sum_k (R_k - R_{k-1}) P_k, R_0 = 0."""
    if len(recall) == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> tuple[list[dict], float]:
    """Accuracy against confidence in equal-width bins, and the expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += n / len(confidence) * abs(acc - conf)
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": n,
                          "confidence": conf, "accuracy": acc})
    return table, ece


@dataclass
class RankResult:
    metrics: dict
    curve: tuple[np.ndarray, np.ndarray]
    curve_top1: tuple[np.ndarray, np.ndarray]
    bins: list[dict]
    confusion: Counter[tuple[int, str]]


def score_rank(
    rank: str,
    truth: dict[str, int],
    calls: dict[str, dict[str, Call]],
    probabilities: dict[str, dict[str, dict[int, float]]] | None,
) -> RankResult:
    reads = list(truth)
    n = len(reads)
    t = np.array([truth[r] for r in reads])
    none = Call(0, 0.0, False)
    got = [calls.get(r, {}).get(rank, none) for r in reads]
    predicted = np.array([c.predicted for c in got], dtype=bool)
    taxid = np.array([c.taxid for c in got])
    conf = np.array([c.confidence for c in got], dtype=np.float64)
    correct = predicted & (taxid == t)

    per_class = {int(c): float(correct[t == c].mean()) for c in np.unique(t)}
    p1, r1, _ = pr_curve(conf[predicted], correct[predicted], n)
    metrics = {
        "reads": n,
        "classified": round(float(predicted.mean()), 6) if n else 0.0,
        "accuracy": round(float(correct.mean()), 6) if n else 0.0,
        "precision": round(float(correct.sum() / max(1, predicted.sum())), 6),
        "mean_class_accuracy": round(float(np.mean(list(per_class.values()))), 6) if n else 0.0,
        "class_accuracy": {str(k): round(v, 6) for k, v in sorted(per_class.items())},
        "average_precision_top1": round(average_precision(p1, r1), 6),
    }
    curve = (p1, r1)
    if probabilities is not None:
        scores, hits = [], []
        for read, true in zip(reads, t, strict=True):
            for tax, p in probabilities.get(read, {}).get(rank, {}).items():
                if p > 0:  # a zero row is an unclassified read: no prediction at any threshold
                    scores.append(p)
                    hits.append(tax == true)
        curve = pr_curve(np.array(scores), np.array(hits, dtype=bool), n)[:2]
        metrics["average_precision_probabilities"] = round(average_precision(*curve), 6)
    metrics["average_precision"] = metrics.get(
        "average_precision_probabilities", metrics["average_precision_top1"]
    )
    bins, ece = reliability(conf[predicted], correct[predicted])
    metrics["expected_calibration_error"] = round(ece, 6)
    confusion = Counter(
        (int(true), str(int(p)) if ok else UNCLASSIFIED)
        for true, p, ok in zip(t, taxid, predicted, strict=True)
    )
    return RankResult(metrics, curve, (p1, r1), bins, confusion)


# --- outputs -------------------------------------------------------------------------------------


def write_confusion(path: Path, confusion: Counter[tuple[int, str]], names: dict[int, str]) -> None:
    """Wide table: one row per truth taxon, one column per predicted taxon, then unclassified."""
    by_truth: Counter[int] = Counter()
    for (t, _), k in confusion.items():
        by_truth[t] += k
    truths = sorted({t for t, _ in confusion}, key=lambda t: (-by_truth[t], t))
    predicted = sorted({p for _, p in confusion if p != UNCLASSIFIED}, key=int)
    columns = [*predicted, UNCLASSIFIED]
    with open(path, "w") as fh:
        header = ["truth_taxid", "truth_name", *(f"{p}:{_name(names, int(p))}"
                                                   for p in predicted), UNCLASSIFIED]
        fh.write("\t".join(header) + "\n")
        for t in truths:
            cells = [str(confusion.get((t, c), 0)) for c in columns]
            fh.write("\t".join([str(t), _name(names, t), *cells]) + "\n")


def _name(names: dict[int, str], taxid: int) -> str:
    return "unknown" if taxid == 0 else names.get(taxid, str(taxid))


def plot_pr(path: Path, rank: str, result: RankResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    p1, r1 = result.curve_top1
    ap1 = result.metrics["average_precision_top1"]
    ax.step(r1, p1, where="post", label=f"top class (AP {ap1:.3f})")
    if "average_precision_probabilities" in result.metrics:
        p, r = result.curve
        ap = result.metrics["average_precision_probabilities"]
        ax.step(r, p, where="post", label=f"all classes, micro (AP {ap:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"{rank}: precision-recall")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(path: Path, rank: str, result: RankResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    if result.bins:
        centres = [(b["low"] + b["high"]) / 2 for b in result.bins]
        ax.bar(centres, [b["accuracy"] for b in result.bins], width=0.09, alpha=0.7,
               label="accuracy per bin")
        ax.plot([b["confidence"] for b in result.bins], [b["accuracy"] for b in result.bins],
                "o", color="black", ms=3, label="mean confidence")
    ece = result.metrics["expected_calibration_error"]
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence", ylabel="accuracy",
           title=f"{rank}: reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(summary: dict) -> str:
    lines = [
        "| rank | reads | classified | accuracy | precision | mean class accuracy "
        "| average precision | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rank, m in summary["ranks"].items():
        lines.append(
            f"| {rank} | {m['reads']} | {m['classified']:.1%} | {m['accuracy']:.1%} "
            f"| {m['precision']:.1%} | {m['mean_class_accuracy']:.1%} "
            f"| {m['average_precision']:.1%} | {m['expected_calibration_error']:.3f} |"
        )
    return "\n".join(lines) + "\n"


# --- command -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", "-p", required=True, type=Path,
                        help="hytax predict or hytax merge TSV (told apart by the header)")
    parser.add_argument("--truth", "-t", required=True, type=Path,
                        help="labels TSV (hytax fragments): read_id, <rank>_taxid, ...")
    parser.add_argument("--probabilities", type=Path,
                        help="hytax predict --probabilities JSONL, for micro-averaged PR curves")
    parser.add_argument("--model", type=Path,
                        help="model folder: class names/taxids; truth outside its classes "
                             "is scored as unknown")
    parser.add_argument("--taxdump", type=Path, help="taxdump folder, for names")
    parser.add_argument("--ranks", nargs="+", default=list(RANKS))
    parser.add_argument("--outdir", "-o", required=True, type=Path)


def evaluate(args: argparse.Namespace) -> dict:
    ranks = list(args.ranks)
    kind, calls, names = read_predictions(args.predictions, ranks)
    truth_all = read_labels(args.truth)
    classes = model_classes(args.model) if args.model else None
    taxonomy = None
    if args.taxdump:
        from hytax.taxonomy import Taxonomy

        taxonomy = Taxonomy.load(args.taxdump)

    name_to_taxid: dict[str, dict[str, int]] = {r: {"unknown": 0} for r in ranks}
    if classes:
        for rank in ranks:
            for c in classes.get(rank, []):
                name_to_taxid[rank][c["name"]] = int(c["taxid"])
                names.setdefault(int(c["taxid"]), c["name"])
    probabilities = None
    if args.probabilities:
        if taxonomy is not None:
            _add_taxonomy_names(args.probabilities, ranks, name_to_taxid, taxonomy)
        probabilities = read_probabilities(args.probabilities, ranks, name_to_taxid)

    args.outdir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"predictions": str(args.predictions), "format": kind,
                     "truth": str(args.truth), "probabilities": str(args.probabilities)
                     if args.probabilities else None,
                     "reads": len(truth_all),
                     "predictions_without_truth": sum(1 for r in calls if r not in truth_all),
                     "scoring": "unclassified = not predicted; truth 0 = class 'unknown'"
                                + ("; truth outside the model's classes = unknown"
                                   if classes else ""),
                     "ranks": {}}
    for rank in ranks:
        truth = {r: lab[rank] for r, lab in truth_all.items()}
        outside = 0
        if classes is not None:
            known = {int(c["taxid"]) for c in classes.get(rank, [])}
            outside = sum(1 for v in truth.values() if v not in known and v != 0)
            truth = {r: (v if v in known else 0) for r, v in truth.items()}
        for taxid in set(truth.values()):
            if taxid not in names and taxonomy is not None and taxid:
                names[taxid] = taxonomy.name(taxid)
        result = score_rank(rank, truth, calls, probabilities)
        result.metrics["truth_outside_model_classes"] = outside
        summary["ranks"][rank] = result.metrics
        write_confusion(args.outdir / f"confusion_{rank}.tsv", result.confusion, names)
        plot_pr(args.outdir / f"pr_{rank}.png", rank, result)
        plot_reliability(args.outdir / f"reliability_{rank}.png", rank, result)
        (args.outdir / f"reliability_{rank}.json").write_text(json.dumps(result.bins) + "\n")

    (args.outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary)
    (args.outdir / "summary.md").write_text(table)
    print(table, file=sys.stderr, end="")
    return summary


def _add_taxonomy_names(
    path: Path, ranks: list[str], name_to_taxid: dict[str, dict[str, int]], taxonomy: object
) -> None:
    """Map class names not known from --model through the taxdump's scientific names."""
    with open(path) as fh:
        first = fh.readline()
    if not first.strip():
        return
    record = json.loads(first)
    for rank in ranks:
        for name in record.get(rank, {}):
            if name not in name_to_taxid[rank]:
                name_to_taxid[rank][name] = int(taxonomy.taxid_of(name))  # type: ignore[attr-defined]
