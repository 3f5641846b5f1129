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

With `card`, the evaluated model is also published as a folder that `--model` takes as is: its
weights and config (plus the test metrics), a README.md model card (data, splits, steps,
calibration, test results) and its figures (learning curves from the training logs, PR curves,
reliability diagrams). `multiqc` writes the same as MultiQC custom content: learning curves
(linegraphs), the test metrics per rank (a table) and the reliability per rank (a linegraph).
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hytax.data import RANKS, read_labels
from hytax.errors import HytaxError

UNCLASSIFIED = "unclassified"


class EvaluationError(HytaxError):
    """Unreadable predictions, truth or probabilities."""


@dataclass
class CardOptions:
    """Publish the evaluated model with a card (see the module docstring)."""

    outdir: Path  # the model folder to write
    training_logs: list[Path] = field(default_factory=list)  # <stage>.metrics.jsonl
    fragments: Path | None = None  # the `hytax fragments` folder the model was trained on


@dataclass
class EvaluateOptions:
    predictions: Path  # hytax predict or hytax merge TSV
    truth: Path  # labels TSV (hytax fragments)
    outdir: Path
    probabilities: Path | None = None  # hytax predict --probabilities JSONL
    model: Path | None = None  # class names/taxids; truth outside its classes is "unknown"
    taxdump: Path | None = None  # names
    ranks: list[str] = field(default_factory=lambda: list(RANKS))
    multiqc: Path | None = None  # folder for MultiQC custom content
    card: CardOptions | None = None


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


def confidence_threshold(
    confidence: np.ndarray, correct: np.ndarray, target_precision: float
) -> dict | None:
    """The lowest confidence t at which the reads with confidence >= t reach the target
    precision (the most recall at that precision); None when no threshold does."""
    precision, recall, thresholds = pr_curve(confidence, correct, len(confidence))
    reached = np.nonzero(precision >= target_precision)[0]
    if len(reached) == 0:
        return None
    k = int(reached[-1])  # thresholds run from high to low
    return {"min_confidence": round(float(thresholds[k]), 4),
            "precision": round(float(precision[k]), 4), "recall": round(float(recall[k]), 4)}


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
        # reads whose taxon is unknown at this rank (not a class of the model, or none in the
        # taxonomy): the share that was given a taxon anyway, i.e. an invented answer
        "unknown_truth": int((t == 0).sum()),
        "given_when_unknown": round(float((predicted & (taxid != 0))[t == 0].mean()), 6)
        if (t == 0).any() else None,
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


def given_when_unknown(metrics: dict) -> str:
    """'x % of n': the share of reads of unknown taxon given one anyway, '-' when none were."""
    given = metrics.get("given_when_unknown")
    return "-" if given is None else f"{given:.1%} of {metrics['unknown_truth']}"


def markdown(summary: dict) -> str:
    lines = [
        "| rank | reads | classified | accuracy | precision | mean class accuracy "
        "| average precision | ECE | taxon given when unknown |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rank, m in summary["ranks"].items():
        invented = given_when_unknown(m)
        lines.append(
            f"| {rank} | {m['reads']} | {m['classified']:.1%} | {m['accuracy']:.1%} "
            f"| {m['precision']:.1%} | {m['mean_class_accuracy']:.1%} "
            f"| {m['average_precision']:.1%} | {m['expected_calibration_error']:.3f} "
            f"| {invented} |"
        )
    return "\n".join(lines) + "\n"


# --- command -------------------------------------------------------------------------------------


def evaluate(options: EvaluateOptions) -> dict:
    ranks = list(options.ranks)
    kind, calls, names = read_predictions(options.predictions, ranks)
    truth_all = read_labels(options.truth)
    classes = model_classes(options.model) if options.model else None
    taxonomy = None
    if options.taxdump:
        from hytax.taxonomy import Taxonomy

        taxonomy = Taxonomy.load(options.taxdump)

    name_to_taxid: dict[str, dict[str, int]] = {r: {"unknown": 0} for r in ranks}
    if classes:
        for rank in ranks:
            for c in classes.get(rank, []):
                name_to_taxid[rank][c["name"]] = int(c["taxid"])
                names.setdefault(int(c["taxid"]), c["name"])
    probabilities = None
    if options.probabilities:
        if taxonomy is not None:
            _add_taxonomy_names(options.probabilities, ranks, name_to_taxid, taxonomy)
        probabilities = read_probabilities(options.probabilities, ranks, name_to_taxid)

    outdir = options.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"predictions": str(options.predictions), "format": kind,
                     "truth": str(options.truth),
                     "probabilities": str(options.probabilities)
                     if options.probabilities else None,
                     "reads": len(truth_all),
                     "predictions_without_truth": sum(1 for r in calls if r not in truth_all),
                     "scoring": "unclassified = not predicted; truth 0 = class 'unknown'"
                                + ("; truth outside the model's classes = unknown"
                                   if classes else ""),
                     "ranks": {}}
    bins: dict[str, list[dict]] = {}
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
        bins[rank] = result.bins
        write_confusion(outdir / f"confusion_{rank}.tsv", result.confusion, names)
        plot_pr(outdir / f"pr_{rank}.png", rank, result)
        plot_reliability(outdir / f"reliability_{rank}.png", rank, result)
        (outdir / f"reliability_{rank}.json").write_text(json.dumps(result.bins) + "\n")

    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary)
    (outdir / "summary.md").write_text(table)
    print(table, file=sys.stderr, end="")
    logs = read_training_logs(options.card.training_logs) if options.card else {}
    if logs:
        plot_learning_curves(outdir / "learning_curves.png", logs)
    if options.multiqc is not None:
        thresholds = _thresholds(options.model)
        write_multiqc(options.multiqc, summary, bins, logs, thresholds)
    if options.card is not None:
        if options.model is None:
            raise EvaluationError("a model card needs --model")
        publish_model(options.model, options.card, summary, outdir)
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


# --- training logs, MultiQC, model card ----------------------------------------------------------

METRICS_SUFFIX = ".metrics.jsonl"
CARD_NAME = "README.md"
STAGES = ("pretrain", "finetune")  # the order of training steps, for curves and the card


def read_training_logs(paths: list[Path]) -> dict[str, list[dict]]:
    """{stage: records} from `[<prefix>.]<stage>.metrics.jsonl` files (pretrain, finetune)."""
    logs: dict[str, list[dict]] = {}
    for path in paths:
        stage = path.name.removesuffix(METRICS_SUFFIX).removesuffix(".jsonl").rsplit(".", 1)[-1]
        records = []
        with open(path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise EvaluationError(f"{path}: line {number}: {exc}") from None
        logs[stage] = records
    order = {stage: i for i, stage in enumerate(STAGES)}
    return dict(sorted(logs.items(), key=lambda item: order.get(item[0], len(order))))


def _curves(records: list[dict]) -> dict[str, dict[str, list[list[float]]]]:
    """Per panel ("loss", "accuracy"): series name -> [[step, value], ...]."""
    loss: dict[str, list[list[float]]] = {"training loss": [], "validation loss": []}
    accuracy: dict[str, list[list[float]]] = {}
    for r in records:
        if r.get("train_loss") is not None:
            loss["training loss"].append([r["step"], round(r["train_loss"], 5)])
        if r.get("val_loss") is not None:
            loss["validation loss"].append([r["step"], round(r["val_loss"], 5)])
        per_rank = r.get("val_accuracy")
        points = ({f"validation {k}": v for k, v in per_rank.items()} if isinstance(per_rank, dict)
                  else {"masked 3-mers": r.get("val_mlm_accuracy"),
                        "next sentence": r.get("val_nsp_accuracy")})
        for name, value in points.items():
            if value is not None:
                accuracy.setdefault(name, []).append([r["step"], round(value, 5)])
    return {"loss": {k: v for k, v in loss.items() if v}, "accuracy": accuracy}


def plot_learning_curves(path: Path, logs: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(logs), figsize=(4.5 * len(logs), 6), squeeze=False)
    for column, (stage, records) in enumerate(logs.items()):
        curves = _curves(records)
        for row, (panel, series) in enumerate(curves.items()):
            ax = axes[row][column]
            for name, points in series.items():
                steps, values = zip(*points, strict=True) if points else ((), ())
                ax.plot(steps, values, marker="o", ms=3, label=name)
            ax.set(xlabel="step", ylabel=panel, title=f"{stage}: {panel}")
            if panel == "accuracy":
                ax.set_ylim(0, 1.02)
            if series:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _thresholds(model: Path | None) -> dict[str, dict | None]:
    if model is None:
        return {}
    config = json.loads((model / "config.json").read_text())
    return config.get("calibration", {}).get("thresholds", {}).get("per_rank", {})


def _linegraph(section: str, name: str, description: str, series: dict, xlab: str, ylab: str,
               **pconfig: object) -> dict:
    return {"id": section, "section_name": name, "description": description,
            "plot_type": "linegraph",
            "pconfig": {"id": f"{section}_plot", "title": f"hytax: {name}", "xlab": xlab,
                        "ylab": ylab, **pconfig},
            "data": series}


def write_multiqc(
    folder: Path, summary: dict, bins: dict[str, list[dict]], logs: dict[str, list[dict]],
    thresholds: dict[str, dict | None],
) -> None:
    """MultiQC custom content (`*_mqc.json`): learning curves, test metrics, reliability."""
    folder.mkdir(parents=True, exist_ok=True)
    sections = []
    for stage, records in logs.items():
        curves = _curves(records)
        sections.append(_linegraph(
            f"hytax_train_{stage}_loss", f"{stage}: loss",
            f"Training loss (mean since the previous validation) and validation loss per step "
            f"of {stage}, from its metrics log.", curves["loss"], "step", "loss"))
        sections.append(_linegraph(
            f"hytax_train_{stage}_accuracy", f"{stage}: validation accuracy",
            "Validation accuracy per step: masked 3-mers and next-sentence pairs (pre-training)"
            ", or per rank on the validation genera (fine-tuning; genera the model never saw, "
            "so genus accuracy stays near 0 unless the truth is 'unknown').",
            curves["accuracy"], "step", "accuracy", ymin=0, ymax=1))
    table = {}
    for rank, m in summary["ranks"].items():
        threshold = thresholds.get(rank)
        table[rank] = {"reads": m["reads"], "classified": 100 * m["classified"],
                       "accuracy": 100 * m["accuracy"],
                       "mean class accuracy": 100 * m["mean_class_accuracy"],
                       "average precision": 100 * m["average_precision"],
                       "ECE": m["expected_calibration_error"],
                       "threshold": threshold["min_confidence"] if threshold else None}
    percent = {"suffix": "%", "min": 0, "max": 100, "format": "{:,.1f}"}
    sections.append({
        "id": "hytax_train_evaluation", "section_name": "test genera: metrics per rank",
        "description": "The model on the fragments of the test genera (never trained on nor "
                       "used for calibration): share classified, accuracy, mean per-class "
                       "accuracy, average precision (BERTax paper), expected calibration error, "
                       "and the confidence threshold fitted on the validation genera.",
        "plot_type": "table",
        "pconfig": {"id": "hytax_train_evaluation_table", "title": "hytax: test genera",
                    "col1_header": "rank"},
        "headers": {"reads": {"format": "{:,.0f}"}, "classified": percent, "accuracy": percent,
                    "mean class accuracy": percent, "average precision": percent,
                    "ECE": {"format": "{:,.3f}"}, "threshold": {"format": "{:,.3f}"}},
        "data": table,
    })
    reliability = {rank: [[round(b["confidence"], 4), round(b["accuracy"], 4)] for b in rows]
                   for rank, rows in bins.items() if rows}
    reliability["perfect calibration"] = [[0.0, 0.0], [1.0, 1.0]]
    sections.append(_linegraph(
        "hytax_train_reliability", "test genera: reliability",
        "Accuracy against mean confidence in ten confidence bins per rank (calibrated "
        "probabilities on the test genera); a calibrated model follows the diagonal.",
        reliability, "confidence", "accuracy", xmin=0, xmax=1, ymin=0, ymax=1))
    for section in sections:
        (folder / f"{section['id']}_mqc.json").write_text(json.dumps(section, indent=1) + "\n")


def publish_model(model: Path, card: CardOptions, summary: dict, evaluation: Path) -> None:
    """The model folder `--model` takes, with the test metrics in its config, a README.md card,
    its figures and the genera of each split."""
    out = card.outdir
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(model / "model.safetensors", out / "model.safetensors")
    config = json.loads((model / "config.json").read_text())
    keys = ("accuracy", "mean_class_accuracy", "average_precision", "classified",
            "expected_calibration_error")
    training = config.setdefault("training", {})
    training["heldout_test_metrics"] = {
        rank: {k: m[k] for k in keys} for rank, m in summary["ranks"].items()
    }
    fragments: dict = {}
    genera: list[dict[str, str]] = []
    if card.fragments is not None:
        info = card.fragments / "fragments.json"
        fragments = json.loads(info.read_text()) if info.is_file() else {}
        for name in ("genera.tsv", "heldout_genera.tsv"):
            if (card.fragments / name).is_file():
                shutil.copy(card.fragments / name, out / name)
        if (out / "genera.tsv").is_file():
            with open(out / "genera.tsv", newline="") as fh:
                genera = list(csv.DictReader(fh, delimiter="\t"))
        training["heldout_genera_file"] = (
            "heldout_genera.tsv" if (out / "heldout_genera.tsv").is_file() else None
        )
    training["card"] = CARD_NAME
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for png in sorted(evaluation.glob("*.png")):
        shutil.copy(png, figures / png.name)
    logs = read_training_logs(card.training_logs)
    (out / CARD_NAME).write_text(model_card(config, summary, fragments, genera, logs,
                                            sorted(p.name for p in figures.glob("*.png"))))


def model_card(config: dict, summary: dict, fragments: dict, genera: list[dict[str, str]],
               logs: dict[str, list[dict]], figures: list[str]) -> str:
    training = config.get("training", {})
    arch = config.get("architecture", {})
    calibration = config.get("calibration", {})
    per_rank = calibration.get("thresholds", {}).get("per_rank", {})
    target = calibration.get("thresholds", {}).get("target_precision")
    lines = [f"# {config.get('name', 'hytax model')}", ""]
    if config.get("description"):
        lines += [config["description"], ""]
    lines += [
        "A BERTax model for hytax: `nextflow run <hytax> --model <this folder> ...` or "
        "`hytax predict --model <this folder>`. Files: `model.safetensors` (weights), "
        "`config.json` (architecture, classes, calibration, provenance), this card, `figures/`, "
        "`genera.tsv` (every genus and its split).", "",
        "## Data", "",
        f"- Source: {fragments.get('reference') or fragments.get('genomes') or 'n/a'} "
        f"(taxonomy: {config.get('taxonomy', {}).get('release', 'n/a')})",
        f"- Fragments: lengths {', '.join(fragments.get('lengths') or [])}"
        f" (weights {fragments.get('length_weights')}), up to {fragments.get('cap_per_genus')} "
        f"per genus, seed {fragments.get('seed')}",
        f"- Split: {fragments.get('split', 'n/a')}; "
        + ", ".join(f"{s} {n:,} fragments / {fragments.get('genera', {}).get(s, 0)} genera"
                    for s, n in (fragments.get("fragments") or {}).items()),
    ]
    untested = fragments.get("superkingdoms_not_held_out")
    if untested:
        lines.append(f"- Too few genera to hold any out (trained on, never validated or "
                     f"tested): {', '.join(untested)}")
    if fragments.get("short_sequences"):
        lines.append(f"- {fragments['short_sequences']} sequences shorter than the shortest "
                     "fragment were not used")
    held = [g for g in genera if g.get("split") in ("val", "test")]
    if held:
        lines += ["", "| split | genus | phylum | superkingdom | fragments |",
                  "|---|---|---|---|---:|"]
        lines += [f"| {g['split']} | {g['genus']} | {g['phylum'] or '-'} | {g['superkingdom']} "
                  f"| {g['fragments']} |" for g in held]
    classes = config.get("classes", {})
    lines += [
        "", "## Training", "",
        f"- Architecture: {arch.get('layers')} blocks, hidden {arch.get('hidden')}, "
        f"{arch.get('heads')} heads, feed-forward {arch.get('intermediate')}; window "
        f"{config.get('window_nt')} nt; {config.get('head', {}).get('kind')} head",
        "- Classes (each rank with `unknown`): "
        + ", ".join(f"{len(v)} {k}" for k, v in classes.items()),
        f"- Encoder: {training.get('encoder', 'random weights')}",
    ]
    for stage, records in logs.items():
        last = records[-1] if records else {}
        lines.append(f"- {stage}: {last.get('step', 0)} steps (the last in epoch "
                     f"{last.get('epoch', 0)}), {len(records)} validation(s)")
    lines.append(
        f"- Fine-tuning: batch {training.get('batch_size')}, peak learning rate "
        f"{training.get('lr')}, best step {training.get('best_step')} of {training.get('steps')}"
        f", {training.get('seconds')} s of training on {training.get('device')}"
        + (f"; resumed from a checkpoint at step(s) {training['resumed_at']}"
           if training.get("resumed_at") else "")
    )
    lines += ["", "## Calibration (validation genera)", "",
              "| rank | temperature | threshold | precision there | recall there |",
              "|---|---:|---:|---:|---:|"]
    for rank, t in calibration.get("temperature", {}).items():
        th = per_rank.get(rank)
        cells = ([f"{th['min_confidence']:.3f}", f"{th['precision']:.1%}", f"{th['recall']:.1%}"]
                 if th else ["none", "-", "-"])
        lines.append(f"| {rank} | {t} | {' | '.join(cells)} |")
    lines += ["", f"Threshold: the lowest confidence at which the validation fragments kept "
                  f"reach {target:.0%} precision (`--min_confidence` to match it); none: no "
                  "confidence does." if target is not None else "",
              "", "## Test genera (never seen in training or calibration)", "",
              markdown(summary).rstrip(), ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name.removesuffix('.png')}](figures/{name})" for name in figures]
    return "\n".join(lines) + "\n"
