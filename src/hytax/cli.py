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
    from hytax.seqio import prepare

    mates2 = args.input2 or [None] * len(args.input)
    if len(mates2) != len(args.input):
        raise HytaxError(
            f"{len(args.input)} --input but {len(args.input2)} --input2: give one --input2 "
            "per --input (runs of paired reads), or none (single-end runs)"
        )
    n = prepare(list(zip(args.input, mates2, strict=True)), args.output)
    print(f"{n} reads written to {args.output}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> None:
    from hytax.predict import PredictOptions, predict_file

    options = PredictOptions(
        device=args.device,
        threads=args.threads,
        batch_tokens=args.batch_tokens,
        windows=args.windows,
        stride_nt=args.stride,
        both_strands=args.strands == "both",
        bertax_format=args.bertax_format,
        progress=args.progress,
        precision=args.precision,
        abstain=not args.no_abstain,
    )
    predict_file(args.model, args.input, args.input2, args.output, args.probabilities, options)


def _calibrate(args: argparse.Namespace) -> None:
    from hytax.calibrate import CalibrationOptions, calibrate_model
    from hytax.predict import PredictOptions

    options = PredictOptions(device=args.device, threads=args.threads,
                             batch_tokens=args.batch_tokens, both_strands=args.strands == "both",
                             precision=args.precision, progress="off")
    calibrate_model(args.model, args.fasta, args.labels, args.outdir,
                    CalibrationOptions(args.max_open_rate, args.target_precision), options)


# --- MMseqs2 routing, merge, reports -------------------------------------------------------------


def _claims(args: argparse.Namespace) -> None:
    import importlib

    from hytax.routing import ClaimRule, write_tier_claims
    from hytax.taxonomy import Taxonomy

    # a classifier's converter is the module hytax.<classifier> with a `claims` function
    # (docs/classifiers.md): nothing else to register
    converter = importlib.import_module(f"hytax.{args.classifier}")
    rule = ClaimRule(min_identity=args.min_identity, min_aln_fraction=args.min_aln_fraction)
    claims = converter.claims(units=args.units, raw=args.raw,
                              taxonomy=Taxonomy.load(args.taxonomy), db_type=args.db_type,
                              source=f"{args.classifier}:{args.db_name}")
    n = write_tier_claims(claims, rule, args.output)
    print(f"{n} claims written to {args.output}", file=sys.stderr)


def _classifier(name: str) -> str:
    import importlib.util

    if not name.isidentifier() or importlib.util.find_spec(f"hytax.{name}") is None:
        raise argparse.ArgumentTypeError(f"no converter for classifier '{name}' "
                                         f"(expected a module hytax.{name})")
    return name


def _route(args: argparse.Namespace) -> None:
    from hytax.routing import route

    n, routed = route(units=args.units, tiers=args.claims, mode=args.route,
                      route_rank=args.route_rank, kept_out=args.kept, routed_out=args.routed)
    print(f"{n} reads, {routed} routed to BERTax", file=sys.stderr)


def _merge(args: argparse.Namespace) -> None:
    from hytax.merge import merge
    from hytax.taxonomy import Taxonomy

    merge(
        units=args.units,
        claims=args.claims,
        bertax=args.bertax,
        taxonomy=Taxonomy.load(args.taxonomy),
        min_confidence=args.min_confidence,
        output=args.output,
    )


def _genes(args: argparse.Namespace) -> None:
    from hytax.genes import write_proteins

    stats = write_proteins(fasta=args.fasta, mapping=args.mapping, proteins_out=args.proteins,
                           mapping_out=args.protein_mapping)
    print(f"{stats.genes} genes from {stats.sequences} sequences ({stats.bases} nt; "
          f"{stats.single_mode} trained on themselves, the rest metagenomic mode; "
          f"{stats.unmapped} without a taxid skipped)", file=sys.stderr)


def _report(args: argparse.Namespace) -> None:
    from hytax.reports import write_reports

    write_reports(args.merged, args.taxdump, args.sample, args.outdir)


def _multiqc_tables(args: argparse.Namespace) -> None:
    from hytax.reports import write_multiqc_tables

    write_multiqc_tables(args.summaries, args.outdir)


def _combine(args: argparse.Namespace) -> None:
    from hytax.combine import CombineOptions, TaxonColumns, combine

    columns = TaxonColumns(name=args.add_name, rank=args.add_rank, lineage=args.add_lineage,
                           id_lineage=args.add_id_lineage, rank_lineage=args.add_rank_lineage)
    written = combine(args.merged, args.outdir, args.claims,
                      CombineOptions(columns=columns, taxdump=args.taxdump))
    print(f"{len(args.merged)} samples: {len(written)} files written to {args.outdir}",
          file=sys.stderr)


def _taxdump_subset(args: argparse.Namespace) -> None:
    from hytax.taxonomy import write_subset

    write_subset(args.taxdump, args.taxids, args.outdir)


def _taxonomy(args: argparse.Namespace) -> None:
    from hytax.taxonomy import write_compact_taxonomy

    taxa, merged = write_compact_taxonomy(args.taxdump, args.taxids, args.model, args.output)
    print(f"{taxa} taxa and {merged} merged ids written to {args.output}", file=sys.stderr)


# --- training and evaluation ---------------------------------------------------------------------


def _fragments(args: argparse.Namespace) -> None:
    from hytax.data import FragmentOptions, GenomeTable, ReferenceFasta, make_fragments

    source: GenomeTable | ReferenceFasta
    if args.reference is not None:
        if args.tax_mapping is None or args.taxdump is None:
            raise HytaxError("--reference needs --tax-mapping and --taxdump")
        source, taxdump = ReferenceFasta(args.reference, args.tax_mapping), args.taxdump
    else:
        source = GenomeTable(args.genomes, args.genome_dir)
        taxdump = args.taxdump or args.genomes.parent / "taxdump"
    options = FragmentOptions(
        lengths=args.length, length_weights=args.length_weights,
        per_superkingdom=args.per_superkingdom or None, per_genus=args.per_genus,
        max_coverage=args.max_coverage, max_ambiguous=args.max_ambiguous, split=args.split,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction,
        holdout_genera=args.holdout_genus, train_genera=args.train_genus,
        drop_without_genus=args.drop_without_genus, seed=args.seed,
    )
    make_fragments(source, taxdump, args.outdir, options)


def _train_parts(args: argparse.Namespace) -> dict:
    """What pre-training and fine-tuning share: data, architecture, loop options."""
    from hytax.train import SIZES, Architecture, LoopOptions, TrainData

    data = TrainData(args.data, args.train, args.val, getattr(args, "train_labels", None),
                     getattr(args, "val_labels", None))
    shape = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads,
             "intermediate": args.intermediate}
    if args.size:
        preset = SIZES[args.size][0]
        shape = {k: getattr(preset, k) for k in shape}
    architecture = Architecture(**shape, dropout=args.dropout, window_nt=args.window_nt)
    loop = LoopOptions(
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup=args.warmup, schedule=args.schedule, decay_by_time=args.decay_by_time,
        max_epochs=args.max_epochs, max_steps=args.max_steps, eval_every=args.eval_every,
        eval_minutes=args.eval_minutes, val_max=args.val_max, patience=args.patience,
        time_limit=args.time_limit,
        time_limit_total=args.time_limit_total, checkpoint_minutes=args.checkpoint_minutes,
        seed=args.seed, resume=args.resume, threads=args.threads, device=args.device,
        precision=args.precision, progress=args.progress, log_every=args.log_every,
    )
    return {"data": data, "outdir": args.outdir, "workdir": args.workdir,
            "architecture": architecture, "loop": loop}


def _pretrain(args: argparse.Namespace) -> None:
    from hytax.train import PretrainOptions, pretrain

    pretrain(PretrainOptions(**_train_parts(args), encoder=args.encoder))


def _finetune(args: argparse.Namespace) -> None:
    from hytax.train import FinetuneOptions, finetune

    finetune(FinetuneOptions(
        **_train_parts(args), taxdump=args.taxdump, pretrained=args.pretrained, head=args.head,
        ranks=list(args.ranks), min_class_count=args.min_class_count,
        target_precision=args.target_precision, max_open_rate=args.max_open_rate,
        name=args.name, description=args.description,
        taxonomy_release=args.taxonomy_release,
    ))


def _evaluate(args: argparse.Namespace) -> None:
    from hytax.evaluate import CardOptions, EvaluateOptions, evaluate

    card = (CardOptions(args.card, args.training_log, args.fragments)
            if args.card is not None else None)
    evaluate(EvaluateOptions(
        predictions=args.predictions, truth=args.truth, outdir=args.outdir,
        probabilities=args.probabilities, model=args.model, taxdump=args.taxdump,
        ranks=list(args.ranks), multiqc=args.multiqc, card=card,
    ))


def _length_spec(text: str) -> object:
    from hytax.data import LengthSpec

    try:
        return LengthSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_fragments_arguments(p: argparse.ArgumentParser) -> None:
    from hytax.data import SPLIT_KINDS, FragmentOptions

    d = FragmentOptions()
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--genomes", type=Path,
                        help="genomes table (TSV with genome_id, taxid[, length])")
    source.add_argument("--reference", type=Path,
                        help="one FASTA (gz) of reference sequences, with --tax-mapping")
    p.add_argument("--genome-dir", type=Path,
                   help="--genomes: folder of <genome_id>.fa.gz (default: genomes/ beside it)")
    p.add_argument("--tax-mapping", type=Path,
                   help="--reference: sequence id -> taxid TSV (seq2taxid)")
    p.add_argument("--taxdump", type=Path,
                   help="NCBI taxdump folder (default with --genomes: taxdump/ beside the table)")
    p.add_argument("--outdir", "-o", required=True, type=Path)
    p.add_argument("--length", type=_length_spec, nargs="+", default=d.lengths,
                   help="fragment lengths, N or MIN:MAX (uniform in the range)")
    p.add_argument("--length-weights", type=float, nargs="+",
                   help="share of each --length (default: equal shares)")
    p.add_argument("--per-superkingdom", type=int, default=d.per_superkingdom,
                   help="target fragments per superkingdom, all lengths together (0: none, "
                        "every genus gets --per-genus)")
    p.add_argument("--per-genus", type=int, default=d.per_genus,
                   help="cap on fragments per genus (all lengths together)")
    p.add_argument("--max-coverage", type=float, default=d.max_coverage,
                   help="at most this many times a genome's length in fragments")
    p.add_argument("--max-ambiguous", type=float, default=d.max_ambiguous,
                   help="skip fragments with a larger fraction of non-ACGT bases "
                        "(paper: 0.08 %%)")
    p.add_argument("--split", choices=SPLIT_KINDS, default=d.split,
                   help="similar: random per genus; nonsimilar: whole genera held out for the "
                        "test set; genus: whole genera for validation and test in every "
                        "superkingdom with at least 3 genera")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction,
                   help="share of fragments (genus split: of each superkingdom's genera) for "
                        "the test set")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of the non-test fragments (genus split: of each "
                        "superkingdom's genera) for validation")
    p.add_argument("--holdout-genus", type=int, nargs="+", default=[], metavar="TAXID",
                   help="nonsimilar and genus: also hold out these genera for the test set")
    p.add_argument("--train-genus", type=int, nargs="+", default=[], metavar="TAXID",
                   help="genus split: never hold out these genera (e.g. another model's "
                        "training genera, so that both are tested on genera neither saw)")
    p.add_argument("--drop-without-genus", action="store_true",
                   help="genus split: drop taxa whose lineage has no genus (default: an error)")
    p.add_argument("--seed", type=int, default=d.seed)


def _defaults(options: type) -> dict[str, object]:
    """The plain defaults of an options dataclass (fields without one are left out)."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(options)
            if f.default is not dataclasses.MISSING}


def _add_training_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    """`hytax pretrain` (mode pretrain) and `hytax finetune` (mode finetune)."""
    from hytax.taxonomy import RANKS
    from hytax.train import SIZES, Architecture, FinetuneOptions, LoopOptions

    arch_d, loop_d, fine_d = Architecture(), LoopOptions(), _defaults(FinetuneOptions)
    io = parser.add_argument_group("data")
    io.add_argument("--data", type=Path,
                    help="`hytax fragments` output folder (train.fa, train.labels.tsv, val.*)")
    io.add_argument("--train", type=Path, help="training fragments FASTA (default: DATA/train.fa)")
    io.add_argument("--val", type=Path, help="validation fragments FASTA (default: DATA/val.fa)")
    if mode == "finetune":
        io.add_argument("--train-labels", type=Path, help="default: DATA/train.labels.tsv")
        io.add_argument("--val-labels", type=Path, help="default: DATA/val.labels.tsv")
        io.add_argument("--taxdump", type=Path, required=True,
                        help="NCBI taxdump folder, for class names")
        io.add_argument("--taxonomy-release", default=fine_d["taxonomy_release"],
                        help="taxonomy description stored in the model config")
        io.add_argument("--pretrained", type=Path,
                        help="start from this encoder: a `hytax pretrain` output or a model "
                             "folder (default: train from scratch)")
    else:
        io.add_argument("--encoder", type=Path,
                        help="start from this encoder: a `hytax pretrain` output or a model "
                             "folder (default: random weights)")
    io.add_argument("--outdir", "-o", required=True, type=Path)
    io.add_argument("--workdir", type=Path,
                    help="checkpoint and metrics log (default: OUTDIR)")

    arch = parser.add_argument_group("architecture (ignored when starting from an encoder)")
    arch.add_argument("--size", choices=list(SIZES),
                      help="a preset in place of --hidden/--layers/--heads/--intermediate: "
                           + "; ".join(f"{k} {a.layers} blocks, hidden {a.hidden}"
                                       for k, (a, _, _) in SIZES.items()))
    arch.add_argument("--hidden", type=int, default=arch_d.hidden)
    arch.add_argument("--layers", type=int, default=arch_d.layers)
    arch.add_argument("--heads", type=int, default=arch_d.heads)
    arch.add_argument("--intermediate", type=int, default=arch_d.intermediate)
    arch.add_argument("--dropout", type=float, default=arch_d.dropout)
    arch.add_argument("--window-nt", type=int, default=arch_d.window_nt,
                      help="longest input; longer fragments are cropped at random")
    if mode == "finetune":
        arch.add_argument("--head", choices=["all_in_one", "flat", "nested"],
                          default=fine_d["head"])
        arch.add_argument("--ranks", nargs="+", default=list(RANKS))
        arch.add_argument("--min-class-count", type=int, default=fine_d["min_class_count"],
                          help="classes with fewer training fragments go to 'unknown'")
        arch.add_argument("--target-precision", type=float, default=fine_d["target_precision"],
                          help="per-rank confidence thresholds: the lowest calibrated confidence "
                               "whose validation fragments reach this precision")
        arch.add_argument("--max-open-rate", type=float, default=fine_d["max_open_rate"],
                          help="abstention: at most this share of validation fragments whose "
                               "taxon is not a class may be given one")
        arch.add_argument("--name", default=fine_d["name"], help="model name stored in the config")
        arch.add_argument("--description", default=fine_d["description"],
                          help="stored in the config")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=loop_d.batch_size)
    opt.add_argument("--lr", type=float,
                     help="peak learning rate (default: the project's rate for the size "
                          "nearest the model's width)")
    opt.add_argument("--weight-decay", type=float, default=loop_d.weight_decay)
    opt.add_argument("--warmup", type=float, default=loop_d.warmup,
                     help="warm-up steps, or a fraction of all steps if below 1")
    opt.add_argument("--schedule", choices=["linear", "cosine"], default=loop_d.schedule)
    opt.add_argument("--decay-by-time", action="store_true",
                     help="with --time-limit, decay the learning rate over the time limit (or "
                          "the steps, whichever runs out first): the schedule then ends where "
                          "training does, whatever the device's speed")
    opt.add_argument("--max-epochs", type=int, default=loop_d.max_epochs)
    opt.add_argument("--max-steps", type=int, default=loop_d.max_steps,
                     help="stop after this many steps (0: no)")
    opt.add_argument("--eval-every", type=int, default=loop_d.eval_every,
                     help="validate every K steps (0: after every epoch)")
    opt.add_argument("--eval-minutes", type=float, default=loop_d.eval_minutes,
                     help="also validate this often, for learning curves (0: no)")
    opt.add_argument("--val-max", type=int, default=loop_d.val_max,
                     help="validate and calibrate on at most this many fragments, a fixed random "
                          "subset (0: all)")
    opt.add_argument("--patience", type=int, default=loop_d.patience,
                     help="stop after this many validations without a lower validation loss")
    opt.add_argument("--time-limit", type=float, default=loop_d.time_limit,
                     help="stop training after this many minutes, then validate and save (0: no)")
    opt.add_argument("--time-limit-total", action="store_true",
                     help="the time limit covers every resumed run together (default: each run)")
    opt.add_argument("--checkpoint-minutes", type=float, default=loop_d.checkpoint_minutes,
                     help="also checkpoint this often between validations (0: at validations)")
    opt.add_argument("--seed", type=int, default=loop_d.seed)
    opt.add_argument("--resume", nargs="?", choices=["yes", "auto"], const="yes",
                     default=loop_d.resume,
                     help="continue from WORKDIR/checkpoint; 'auto': only if it exists and was "
                          "written for the same data and settings, else start over")

    run = parser.add_argument_group("resources")
    run.add_argument("--threads", type=int, default=loop_d.threads,
                     help="torch CPU threads (0: default)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default=loop_d.device)
    run.add_argument("--precision", choices=["fp32", "bf16"], default=loop_d.precision,
                     help="bf16: mixed precision (bf16 autocast, fp32 weights), for GPUs")
    run.add_argument("--progress", choices=["auto", "on", "off"], default=loop_d.progress)
    run.add_argument("--log-every", type=int, default=loop_d.log_every,
                     help="without a progress bar, print a line every N steps")


def _add_pretrain_arguments(p: argparse.ArgumentParser) -> None:
    _add_training_arguments(p, "pretrain")


def _add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    _add_training_arguments(p, "finetune")


def _add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from hytax.taxonomy import RANKS

    p.add_argument("--predictions", "-p", required=True, type=Path,
                   help="hytax predict or hytax merge TSV (told apart by the header)")
    p.add_argument("--truth", "-t", required=True, type=Path,
                   help="labels TSV (hytax fragments): read_id, <rank>_taxid, ...")
    p.add_argument("--probabilities", type=Path,
                   help="hytax predict --probabilities JSONL, for micro-averaged PR curves")
    p.add_argument("--model", type=Path,
                   help="model folder: class names/taxids; truth outside its classes is scored "
                        "as unknown")
    p.add_argument("--taxdump", type=Path, help="taxdump folder, for names")
    p.add_argument("--ranks", nargs="+", default=list(RANKS))
    p.add_argument("--outdir", "-o", required=True, type=Path)
    p.add_argument("--multiqc", type=Path, metavar="DIR",
                   help="also write MultiQC custom content (learning curves, metrics per rank, "
                        "reliability) into DIR")
    p.add_argument("--card", type=Path, metavar="DIR",
                   help="publish --model into DIR with the test metrics, a README.md model card "
                        "and its figures")
    p.add_argument("--training-log", type=Path, nargs="+", default=[], metavar="JSONL",
                   help="<stage>.metrics.jsonl of pre-training and fine-tuning (learning curves)")
    p.add_argument("--fragments", type=Path, metavar="DIR",
                   help="the `hytax fragments` folder the model was trained on (for the card)")


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
    p.add_argument("--no-abstain", action="store_true",
                   help="always give the most probable class, ignoring the model's abstention "
                        "thresholds (calibration.abstain in its config)")
    _add_inference_args(p)
    p.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar: auto shows it only on a terminal",
    )
    p.set_defaults(handler=_predict)


def _add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strands",
        choices=["one", "both"],
        default="one",
        help="one: the read as given; both: the mean of the read and its reverse complement "
             "(twice the work, under one point of accuracy on unseen genera: docs/benchmark.md)",
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


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    from hytax.calibrate import CalibrationOptions

    d = CalibrationOptions()
    p = sub.add_parser("calibrate", help="fit a model's temperatures and abstention thresholds "
                                         "on fragments of genera it never saw")
    p.add_argument("--model", required=True, type=Path, help="model directory")
    p.add_argument("--fasta", required=True, type=Path,
                   help="validation fragments (hytax fragments --split genus: val.fa)")
    p.add_argument("--labels", required=True, type=Path, help="their labels (val.labels.tsv)")
    p.add_argument("--outdir", "-o", required=True, type=Path,
                   help="the calibrated model (a copy; may be --model itself)")
    p.add_argument("--max-open-rate", type=float, default=d.max_open_rate,
                   help="abstention: at most this share of fragments whose taxon is not a class "
                        "may be given one")
    p.add_argument("--target-precision", type=float, default=d.target_precision,
                   help="per-rank thresholds reaching this precision (for --min_confidence)")
    _add_inference_args(p)
    p.set_defaults(handler=_calibrate)


def _check_model(args: argparse.Namespace) -> None:
    from hytax.model import BertConfig, check_model

    config = check_model(args.model)
    arch, head = BertConfig(**config["architecture"]), config["head"]
    sizes = ", ".join(f"{len(config['classes'][r])} {r}" for r in head["ranks"])
    shape = f"{arch.layers} blocks, hidden {arch.hidden}, {head['kind']} head"
    print(f"{args.model}: ok ({shape}: {sizes})")


def _add_check_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-model", help="check a model folder (config, weights header, tensor shapes)"
    )
    p.add_argument("--model", required=True, type=Path, help="model directory")
    p.set_defaults(handler=_check_model)


def _add_pipeline_steps(sub: argparse._SubParsersAction) -> None:
    from hytax.mmseqs2 import ALN_COLUMNS

    p = sub.add_parser("prepare", help="validate reads and write one FASTA record per read/pair")
    p.add_argument(
        "--input",
        "-i",
        required=True,
        type=Path,
        action="append",
        help="FASTA/FASTQ (gz); repeat for several runs of the sample",
    )
    p.add_argument(
        "--input2", type=Path, action="append", help="mate-2 file of each --input, in order"
    )
    p.add_argument("--output", "-o", required=True, type=Path)
    p.set_defaults(handler=_prepare)

    p = sub.add_parser("genes", help="proteins of reference genomes (pyrodigal) for a protein DB")
    p.add_argument("--fasta", required=True, type=Path, help="reference sequences (FASTA, gz)")
    p.add_argument("--mapping", required=True, type=Path, help="sequence id -> taxid TSV")
    p.add_argument("--proteins", required=True, type=Path, help="output: proteins (FASTA)")
    p.add_argument("--protein-mapping", required=True, type=Path,
                   help="output: protein id -> taxid TSV")
    p.set_defaults(handler=_genes)

    p = sub.add_parser("claims", help="a classifier's raw output -> standard claims of one tier")
    p.add_argument("--classifier", type=_classifier, default="mmseqs2",
                   help="the converter, module hytax.<classifier> (default mmseqs2)")
    p.add_argument("--units", required=True, type=Path, help="prepared reads (FASTA)")
    p.add_argument("--raw", required=True, type=Path, nargs="+",
                   help="the classifier's tables; mmseqs2: the createtsv LCA table and the "
                        f"convertalis table ({ALN_COLUMNS}), queries numbered by read, sorted")
    p.add_argument("--db-type", required=True, choices=["nucleotide", "protein"])
    p.add_argument("--db-name", required=True, help="the tier's name (source mmseqs2:<name>)")
    p.add_argument("--taxonomy", required=True, type=Path, help="taxonomy (taxdump folder)")
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
        help="the tier claims nothing when its hits cover less of the read (0-1; default 0)",
    )
    p.add_argument("--output", "-o", required=True, type=Path, help="claims TSV")
    p.set_defaults(handler=_claims)

    p = sub.add_parser("route", help="keep each read's first closing tier; reads for BERTax")
    p.add_argument("--units", required=True, type=Path, help="prepared reads (FASTA)")
    p.add_argument("--claims", required=True, type=Path, action="append",
                   help="a tier's claims TSV; repeat in tier order")
    p.add_argument("--route", choices=["unclassified", "below_rank"], default="unclassified")
    p.add_argument("--route-rank", default="genus")
    p.add_argument("--kept", required=True, type=Path, help="output: kept claims TSV")
    p.add_argument("--routed", required=True, type=Path, help="output: reads for BERTax (FASTA)")
    p.set_defaults(handler=_route)

    p = sub.add_parser("merge", help="one table, every read once, database tiers then BERTax")
    p.add_argument("--units", required=True, type=Path)
    p.add_argument("--claims", required=True, type=Path, help="kept claims TSV (hytax route)")
    p.add_argument("--bertax", required=True, type=Path, help="hytax predict TSV")
    p.add_argument("--taxonomy", required=True, type=Path, help="taxonomy (taxdump folder)")
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

    p = sub.add_parser("combine", help="all samples side by side: taxpasta wide tables, Krona text")
    p.add_argument("merged", nargs="+", type=Path, help="every sample's <sample>.hytax.tsv")
    p.add_argument("--claims", nargs="*", default=[], type=Path,
                   help="every sample's and tier's <sample>.<db_name>.claims.tsv")
    p.add_argument("--taxdump", type=Path, help="taxonomy for the --add-* columns")
    for column in ("name", "rank", "lineage", "id-lineage", "rank-lineage"):
        p.add_argument(f"--add-{column}", action="store_true",
                       help=f"add taxpasta's {column.replace('-', '_')} column")
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(handler=_combine)

    p = sub.add_parser("taxdump-subset", help="a small taxdump holding the lineages of some taxa")
    p.add_argument("--taxdump", required=True, type=Path)
    p.add_argument("--taxids", required=True, type=Path, help="file with one taxid per line")
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(handler=_taxdump_subset)

    p = sub.add_parser(
        "taxonomy", help="a compact taxonomy: lineages of the taxa the references and model name"
    )
    p.add_argument("--taxdump", required=True, type=Path,
                   help="taxdump folder (or MMseqs2 seqTaxDB prefix with .dmp files)")
    p.add_argument("--taxids", action="append", default=[], type=Path,
                   help="taxids in the last column: MMseqs2 <db>_mapping, seq2taxid TSV (repeat)")
    p.add_argument("--model", action="append", default=[], type=Path,
                   help="model folder whose config.json classes name taxids (repeat)")
    p.add_argument("--output", "-o", required=True, type=Path,
                   help="compact taxonomy to write (e.g. taxonomy.hytax.tsv; .gz to compress)")
    p.set_defaults(handler=_taxonomy)


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


# Subcommands whose argument defaults come from modules that import torch (seconds to load):
# they are only defined in full when asked for, so the pipeline's light steps start fast.
_TRAINING: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "fragments": ("sample labelled fragments and split them", _add_fragments_arguments,
                  _fragments),
    "pretrain": ("masked 3-mers + next-sentence pre-training", _add_pretrain_arguments,
                 _pretrain),
    "finetune": ("fine-tune a taxonomy head", _add_finetune_arguments, _finetune),
    "evaluate": ("average precision, class accuracy, PR curves, model card",
                 _add_evaluate_arguments, _evaluate),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `command`, training subcommands other than it stay bare stubs."""
    parser = argparse.ArgumentParser(prog="hytax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hytax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_calibrate(sub)
    _add_check_model(sub)
    _add_pipeline_steps(sub)
    _add_convert(sub)
    for name, (help_text, add_arguments, handler) in _TRAINING.items():
        p = sub.add_parser(name, help=help_text)
        if command in (None, name):
            add_arguments(p)
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
