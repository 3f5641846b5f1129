"""The `hytax` command: one subcommand per verb, each a thin layer over a library function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from hytax import __version__
from hytax.errors import HytaxError

Handler = Callable[[argparse.Namespace], int | None]


def _rank_thresholds(text: str) -> dict[str, float]:
    """Parse 'genus=0.95,phylum=0.8' into {rank: minimum}."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        rank, sep, value = item.partition("=")
        try:
            out[rank.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(f"expected RANK=NUMBER, got '{item}'")
    return out


# --- reads ---------------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace) -> None:
    from hytax.seqio import read_units, write_fasta

    n = write_fasta(read_units(args.input, args.input2), args.output)
    print(f"{n} reads written to {args.output}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> None:
    from hytax.predict import PredictOptions, predict_file

    options = PredictOptions(
        device=args.device,
        threads=args.threads,
        batch_tokens=args.batch_tokens,
        windows=args.windows,
        stride_nt=args.stride,
        both_strands=not args.single_strand,
        bertax_format=args.bertax_format,
        progress=args.progress,
        precision=args.precision,
    )
    predict_file(args.model, args.input, args.input2, args.output, args.probabilities, options)


# --- MMseqs2 routing, merge, reports -------------------------------------------------------------


def _route(args: argparse.Namespace) -> None:
    from hytax.merge import route

    route(
        units=args.units,
        lca=args.lca,
        aln=args.aln,
        taxdump=args.taxdump,
        mode=args.route,
        route_rank=args.route_rank,
        min_identity=args.min_identity,
        min_aln_fraction=args.min_aln_fraction,
        claims_out=args.claims,
        routed_out=args.routed,
    )


def _merge(args: argparse.Namespace) -> None:
    from hytax.merge import merge

    merge(
        units=args.units,
        claims=args.claims,
        bertax=args.bertax,
        taxdump=args.taxdump,
        min_confidence=args.min_confidence,
        output=args.output,
    )


def _report(args: argparse.Namespace) -> None:
    from hytax.reports import write_reports

    write_reports(args.merged, args.taxdump, args.sample, args.outdir)


def _multiqc_tables(args: argparse.Namespace) -> None:
    from hytax.reports import write_multiqc_tables

    write_multiqc_tables(args.summaries, args.outdir)


def _taxdump_subset(args: argparse.Namespace) -> None:
    from hytax.taxonomy import write_subset

    write_subset(args.taxdump, args.taxids, args.outdir)


# --- training and evaluation ---------------------------------------------------------------------


def _fragments(args: argparse.Namespace) -> None:
    from hytax.data import make_fragments

    make_fragments(args)


def _pretrain(args: argparse.Namespace) -> None:
    from hytax.train import pretrain

    pretrain(args)


def _finetune(args: argparse.Namespace) -> None:
    from hytax.train import finetune

    finetune(args)


def _evaluate(args: argparse.Namespace) -> None:
    from hytax.evaluate import evaluate

    evaluate(args)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify reads with a BERTax model")
    p.add_argument("--model", required=True, type=Path, help="model directory")
    p.add_argument("--input", "-i", required=True, type=Path, help="FASTA/FASTQ (gz)")
    p.add_argument("--input2", type=Path, help="mate 2 file: pairs are classified as one unit")
    p.add_argument("--output", "-o", required=True, type=Path, help="predictions TSV")
    p.add_argument("--probabilities", type=Path, help="also write every class probability (JSONL)")
    p.add_argument("--bertax-format", action="store_true", help="write the original BERTax TSV")
    p.add_argument(
        "--windows",
        choices=["mean", "each"],
        default="mean",
        help="long reads: mean over windows, or one row per window",
    )
    p.add_argument("--stride", type=int, help="window stride in nt (default: the window, 1500)")
    p.add_argument(
        "--single-strand",
        action="store_true",
        help="do not average a read with its reverse complement",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all available)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "int8", "bf16"],
        default="auto",
        help="auto: bf16 autocast on GPU, dynamic int8 linear layers on CPU",
    )
    p.add_argument("--batch-tokens", type=int, default=16384, help="tokens per forward pass")
    p.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar: auto shows it only on a terminal",
    )
    p.set_defaults(handler=_predict)


def _add_pipeline_steps(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="validate reads and write one FASTA record per read/pair")
    p.add_argument("--input", "-i", required=True, type=Path)
    p.add_argument("--input2", type=Path)
    p.add_argument("--output", "-o", required=True, type=Path)
    p.set_defaults(handler=_prepare)

    p = sub.add_parser("route", help="decide what MMseqs2 may claim; write the reads for BERTax")
    p.add_argument("--units", required=True, type=Path, help="prepared reads (FASTA)")
    p.add_argument("--lca", required=True, type=Path, help="mmseqs taxonomy LCA TSV")
    p.add_argument("--aln", type=Path, help="mmseqs alignment TSV (query,target,fident,...)")
    p.add_argument("--taxdump", required=True, type=Path, help="folder with nodes.dmp/names.dmp")
    p.add_argument("--route", choices=["unclassified", "below_rank"], default="unclassified")
    p.add_argument("--route-rank", default="genus")
    p.add_argument(
        "--min-identity",
        type=_rank_thresholds,
        default={},
        help="per-rank minimum best-hit identity, e.g. genus=0.95,phylum=0.8",
    )
    p.add_argument(
        "--min-aln-fraction",
        type=float,
        default=0.0,
        help="MMseqs2 claims nothing when its best hit covers less of the read (0-1; default 0)",
    )
    p.add_argument("--claims", required=True, type=Path, help="output: MMseqs2 claims TSV")
    p.add_argument("--routed", required=True, type=Path, help="output: reads for BERTax (FASTA)")
    p.set_defaults(handler=_route)

    p = sub.add_parser("merge", help="one table, every read once, MMseqs2 then BERTax")
    p.add_argument("--units", required=True, type=Path)
    p.add_argument("--claims", required=True, type=Path)
    p.add_argument("--bertax", required=True, type=Path, help="hytax predict TSV")
    p.add_argument("--taxdump", required=True, type=Path)
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--output", "-o", required=True, type=Path)
    p.set_defaults(handler=_merge)

    p = sub.add_parser("report", help="Kraken2-style report, taxpasta profile, Krona text")
    p.add_argument("--merged", required=True, type=Path)
    p.add_argument("--taxdump", required=True, type=Path)
    p.add_argument("--sample", required=True)
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(handler=_report)

    p = sub.add_parser("multiqc-tables", help="MultiQC custom-content tables from sample summaries")
    p.add_argument("summaries", nargs="+", type=Path)
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(handler=_multiqc_tables)

    p = sub.add_parser("taxdump-subset", help="a small taxdump holding the lineages of some taxa")
    p.add_argument("--taxdump", required=True, type=Path)
    p.add_argument("--taxids", required=True, type=Path, help="file with one taxid per line")
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(handler=_taxdump_subset)


def _convert_bertax(args: argparse.Namespace) -> None:
    import warnings

    from hytax.convert import ConversionWarning, convert_bertax

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        bundle = convert_bertax(
            args.model, args.outdir, taxdump=args.taxdump, classes=args.classes, heads=args.heads
        )
    for warning in caught:
        if issubclass(warning.category, ConversionWarning):
            print(f"hytax convert-bertax: warning: {warning.message}", file=sys.stderr)
    arch = bundle.model.bert_config
    sizes = ", ".join(f"{len(bundle.classes(r))} {r}" for r in bundle.ranks)
    print(
        f"{args.model}: {arch.layers} blocks, {arch.heads} heads, {arch.hidden} dims, {sizes}; "
        f"written to {args.outdir}",
        file=sys.stderr,
    )


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-bertax", help="convert the original BERTax keras .h5 model into a hytax model"
    )
    p.add_argument(
        "model", type=Path, help="keras .h5, e.g. big_trainingset_all_fix_classes_selection.h5"
    )
    p.add_argument("outdir", type=Path, help="model directory to write (use with --model)")
    p.add_argument(
        "--taxdump", type=Path, help="NCBI taxdump: class names -> taxids (without it: taxid 0)"
    )
    p.add_argument(
        "--classes",
        type=Path,
        help="JSON {rank: [names in output order]} (default: the published 5/44/156 classes)",
    )
    p.add_argument(
        "--heads", type=int, help="attention heads when the .h5 has no model config (default 5)"
    )
    p.set_defaults(handler=_convert_bertax)


# Subcommands whose argument definitions live in modules that import torch (seconds to load):
# they are only defined in full when asked for, so the pipeline's light steps start fast.
_TRAINING = {
    "fragments": ("hytax.data", "sample labelled fragments and split them", _fragments),
    "pretrain": ("hytax.train", "masked 3-mers + next-sentence pre-training", _pretrain),
    "finetune": ("hytax.train", "fine-tune a taxonomy head", _finetune),
    "evaluate": ("hytax.evaluate", "average precision, class accuracy, PR curves", _evaluate),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `command`, training subcommands other than it stay bare stubs."""
    import importlib

    parser = argparse.ArgumentParser(prog="hytax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hytax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_pipeline_steps(sub)
    _add_convert(sub)
    for name, (module, help_text, handler) in _TRAINING.items():
        p = sub.add_parser(name, help=help_text)
        if command in (None, name):
            extra = (name,) if module == "hytax.train" else ()
            importlib.import_module(module).add_arguments(p, *extra)
        p.set_defaults(handler=handler)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line ('' when none, e.g. `hytax --version`)."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    handler: Handler = args.handler
    try:
        return int(handler(args) or 0)
    except HytaxError as exc:
        print(f"hytax {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
