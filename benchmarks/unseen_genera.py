#!/usr/bin/env python3
"""BERTax on genera the model never saw: a model as shipped before and after calibration on
validation genera (temperature + abstention), tested on other unseen genera.

Steps (each skipped when its output exists, so a run can be resumed):
1. `hytax fragments --split genus` of the shared genomes, 150 and 1500 nt, the same number per
   genus, keeping the model's genus classes in training (`--train-genus`) so that validation and
   test genera are genera the model never saw;
2. `hytax calibrate` on the validation genera and the training genera the model never saw;
3. `hytax predict` of the test genera with the model as it was (`--no-abstain`) and calibrated;
4. `hytax evaluate` of both, over all fragments and per length; a markdown summary on stdout.

    python benchmarks/unseen_genera.py --outdir benchmark-out/unseen
        [--data ../shared/data] [--model assets/models/hytax-mini] [--strands one|both]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hytax.evaluate import given_when_unknown

REPO = Path(__file__).resolve().parents[1]
HYTAX = [sys.executable, "-m", "hytax.cli"]
LENGTHS = (150, 1500)


def run(*args: object) -> None:
    cmd = [*HYTAX, *map(str, args)]
    print("+ hytax " + " ".join(map(str, args)), file=sys.stderr)
    subprocess.run(cmd, check=True)


def fragments(data: Path, model: Path, out: Path, seed: int) -> None:
    if (out / "fragments.json").is_file():
        return
    config = json.loads((model / "config.json").read_text())
    known = [str(c["taxid"]) for c in config["classes"]["genus"] if c["taxid"]]
    run("fragments", "--genomes", data / "genomes.tsv", "--outdir", out,
        "--length", *LENGTHS, "--per-superkingdom", 0, "--per-genus", 120,
        "--split", "genus", "--test-fraction", 0.25, "--val-fraction", 0.15,
        "--train-genus", *known, "--drop-without-genus", "--seed", seed)


def calibration_set(frag: Path, model: Path, out: Path) -> tuple[Path, Path]:
    """Every validation and training fragment of a genus that is not a class of the model: for
    a model trained elsewhere all of these are genera it never saw, so its thresholds are fitted
    on ~4x the validation genera alone and no figure hangs on a few of them."""
    config = json.loads((model / "config.json").read_text())
    known = {str(c["taxid"]) for c in config["classes"]["genus"] if c["taxid"]}
    fasta, labels = out.with_suffix(".fa"), out.with_suffix(".labels.tsv")
    with open(fasta, "w") as fa, open(labels, "w") as lab:
        for split in ("train", "val"):
            rows = (frag / f"{split}.labels.tsv").read_text().splitlines()
            header = rows[0].split("\t")
            genus = header.index("genus_taxid")
            keep = {r.split("\t")[0] for r in rows[1:] if r.split("\t")[genus] not in known}
            if split == "train":
                lab.write(rows[0] + "\n")
            lab.writelines(r + "\n" for r in rows[1:] if r.split("\t")[0] in keep)
            lines = (frag / f"{split}.fa").read_text().split("\n")
            for head, seq in zip(lines[0::2], lines[1::2], strict=False):
                if head[1:].split(" ", 1)[0] in keep:
                    fa.write(f"{head}\n{seq}\n")
    return fasta, labels


def predict(model: Path, fasta: Path, out: Path, strands: list[str], extra: list[str]) -> None:
    if out.with_suffix(".tsv").is_file():
        return
    run("predict", "--model", model, "--input", fasta, "--output", out.with_suffix(".tsv"),
        "--probabilities", out.with_suffix(".probs.jsonl"), "--progress", "off", *strands, *extra)


def by_length(name: Path, labels: Path, model: Path, taxdump: Path) -> dict[str, dict]:
    """Evaluate all fragments, then each length on its own: {"all"|"150"|"1500": summary}."""
    rows = name.with_suffix(".tsv").read_text().splitlines()
    label_rows = labels.read_text().splitlines()
    probs = name.with_suffix(".probs.jsonl").read_text().splitlines()
    length = {r.split("\t", 2)[0]: r.split("\t", 2)[1] for r in rows[1:]}
    out: dict[str, dict] = {}
    for part in ("all", *map(str, LENGTHS)):
        folder = name.parent / f"eval_{name.name}_{part}"
        if not (folder / "summary.json").is_file():
            keep = set(length) if part == "all" else {k for k, v in length.items() if v == part}
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "predictions.tsv").write_text(
                "\n".join([rows[0], *_kept(rows[1:], keep)]) + "\n")
            (folder / "labels.tsv").write_text(
                "\n".join([label_rows[0], *_kept(label_rows[1:], keep)]) + "\n")
            (folder / "probabilities.jsonl").write_text("".join(
                p + "\n" for p in probs if json.loads(p)["read_id"] in keep))
            run("evaluate", "--predictions", folder / "predictions.tsv",
                "--truth", folder / "labels.tsv", "--probabilities",
                folder / "probabilities.jsonl", "--model", model, "--taxdump", taxdump,
                "--outdir", folder)
        out[part] = json.loads((folder / "summary.json").read_text())
    return out


def _kept(lines: list[str], ids: set[str]) -> list[str]:
    return [line for line in lines if line.split("\t", 1)[0] in ids]


def at_threshold(predictions: Path, labels: Path, rank: str, cut: float) -> tuple[float, float]:
    """(share answered, precision) of answers with confidence >= cut at `rank`."""
    truth = {}
    for line in labels.read_text().splitlines()[1:]:
        cells = line.split("\t")
        truth[cells[0]] = cells
    header = labels.read_text().splitlines()[0].split("\t")
    col = header.index(f"{rank}_taxid")
    rows = predictions.read_text().splitlines()
    head = rows[0].split("\t")
    t_col, p_col = head.index(f"{rank}_taxid"), head.index(f"{rank}_prob")
    answered = right = 0
    for line in rows[1:]:
        cells = line.split("\t")
        if cells[t_col] != "0" and float(cells[p_col]) >= cut:
            answered += 1
            right += cells[t_col] == truth[cells[0]][col]
    return answered / max(1, len(rows) - 1), right / max(1, answered)


def report(results: dict[str, dict[str, dict]], calibration: dict, outdir: Path) -> str:
    lines = ["| model | length | rank | accuracy | AP | ECE | taxon given when unknown |",
             "|---|---|---|---:|---:|---:|---:|"]
    for model, parts in results.items():
        for part, summary in parts.items():
            for rank, m in summary["ranks"].items():
                lines.append(
                    f"| {model} | {part} | {rank} | {m['accuracy']:.1%} "
                    f"| {m['average_precision']:.1%} | {m['expected_calibration_error']:.3f} "
                    f"| {given_when_unknown(m)} |")
    cut = (calibration["thresholds"]["per_rank"].get("superkingdom") or {}).get("min_confidence")
    if cut is not None:
        lines.append("")
        lines.append(f"Superkingdom answers at the validation genera's 85 %-precision threshold "
                     f"({cut}), test genera:")
        for part in ("all", *map(str, LENGTHS)):
            folder = outdir / f"eval_calibrated_{part}"
            share, precision = at_threshold(folder / "predictions.tsv", folder / "labels.tsv",
                                            "superkingdom", cut)
            lines.append(f"- {part}: {share:.1%} answered, {precision:.1%} right")
    return "\n".join(lines) + "\n"


def phylum_confusion(predictions: Path, labels: Path, taxdump: Path, superkingdom: int) -> str:
    """Truth phylum (rows) against the phylum answered (columns), for the fragments of one
    superkingdom: answers given to at least 2 % of them, the rest as `other`, then `unknown`."""
    from collections import Counter

    from hytax.taxonomy import Taxonomy

    names = Taxonomy.load(taxdump)
    truth = {}
    for line in labels.read_text().splitlines()[1:]:
        read_id, sk, phylum = line.split("\t")[:3]
        if int(sk) == superkingdom:
            truth[read_id] = int(phylum)
    rows = predictions.read_text().splitlines()
    col = rows[0].split("\t").index("phylum_taxid")
    pairs = Counter()
    for line in rows[1:]:
        cells = line.split("\t")
        if cells[0] in truth:
            pairs[truth[cells[0]], int(cells[col])] += 1
    answered = Counter()
    for (_, got), n in pairs.items():
        answered[got] += n
    shown = [t for t, n in answered.most_common() if t and n >= 0.02 * len(truth)]
    head = ["truth phylum (fragments)", *(names.name(t) for t in shown), "other", "unknown"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for phylum in sorted({t for t, _ in pairs}, key=lambda t: -sum(
            n for (tt, _), n in pairs.items() if tt == t)):
        counts = {got: n for (tt, got), n in pairs.items() if tt == phylum}
        total = sum(counts.values())
        other = sum(n for got, n in counts.items() if got and got not in shown)
        cells = [f"{names.name(phylum) if phylum else '(none)'} ({total})",
                 *(str(counts.get(t, 0)) for t in shown), str(other), str(counts.get(0, 0))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=REPO / "assets" / "models" / "hytax-mini")
    parser.add_argument("--strands", choices=["one", "both"], default="one")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    frag = out / "fragments"
    fragments(args.data, args.model, frag, args.seed)
    strands = ["--strands", args.strands]
    calibrated = out / "calibrated"
    if not (calibrated / "config.json").is_file():
        fasta, labels = calibration_set(frag, args.model, out / "calibration")
        run("calibrate", "--model", args.model, "--fasta", fasta, "--labels", labels,
            "--outdir", calibrated, *strands)
    predict(args.model, frag / "test.fa", out / "previous", strands, ["--no-abstain"])
    predict(calibrated, frag / "test.fa", out / "calibrated", strands, [])
    results = {
        name: by_length(out / name, frag / "test.labels.tsv", model, frag / "taxdump")
        for name, model in (("previous", args.model), ("calibrated", calibrated))
    }
    calibration = json.loads((calibrated / "config.json").read_text())["calibration"]
    text = report(results, calibration, out)
    for superkingdom, name in ((2, "Bacteria"), (2759, "Eukaryota")):
        text += (f"\nPhylum answers of the calibrated model, test fragments of {name} "
                 "(rows: truth; a phylum that is not a class can only be right as unknown):\n\n"
                 + phylum_confusion(out / "calibrated.tsv", frag / "test.labels.tsv",
                                    frag / "taxdump", superkingdom))
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
