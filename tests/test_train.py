"""Pre-training inputs, fine-tuning labels, the training loop, checkpoints and model files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA as DATA

from hytax.data import Genome, LengthSpec, sample_genome, write_split
from hytax.model import load_model
from hytax.tokenizer import CLS, MASK, N_SPECIAL, PAD, SEP, UNK, VOCAB
from hytax.train import (
    IGNORE,
    NSP_IS_NEXT,
    NSP_RANDOM,
    Architecture,
    FinetuneOptions,
    LoopOptions,
    PretrainOptions,
    TrainData,
    build_classes,
    class_weights,
    classification_batch,
    finetune,
    label_matrix,
    load_pretrained,
    lr_factor,
    mask_tokens,
    nsp_batch,
    predict_logps,
    pretrain,
    read_fragments,
    val_subset,
)

# Two clearly different superkingdoms: a GC-rich bacterium and an AT-rich yeast chromosome.
BACTERIUM = ("Akkermansia_muciniphila_BAA835_500kb", 349741,
             {"superkingdom": 2, "phylum": 74201, "genus": 239934})
EUKARYOTE = ("Scerevisiae_chrI", 559292,
             {"superkingdom": 2759, "phylum": 4890, "genus": 4930})
TAXA = [  # taxid, parent, rank, name: just the lineages above, for class names
    (1, 1, "no rank", "root"),
    (2, 1, "superkingdom", "Bacteria"),
    (74201, 2, "phylum", "Verrucomicrobia"),
    (239934, 74201, "genus", "Akkermansia"),
    (349741, 239934, "species", "Akkermansia muciniphila"),
    (2759, 1, "superkingdom", "Eukaryota"),
    (4890, 2759, "phylum", "Ascomycota"),
    (4930, 4890, "genus", "Saccharomyces"),
    (559292, 4930, "species", "Saccharomyces cerevisiae"),
]
TINY = Architecture(hidden=32, layers=2, heads=2, intermediate=64, dropout=0.0, window_nt=300)
LOOP = LoopOptions(batch_size=16, lr=2e-3, warmup=0.05, threads=2, progress="off", log_every=0,
                   seed=3)


# --- masking and next-sentence pairs -------------------------------------------------------------


def test_mask_tokens_follows_the_80_10_10_rule() -> None:
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(N_SPECIAL, len(VOCAB), (400, 500), generator=gen)
    tokens[:, 0] = CLS
    tokens[:, 250] = SEP
    tokens[:, 480:] = PAD
    tokens[:, 100:110] = UNK
    inputs, labels = mask_tokens(tokens, gen)
    chosen = labels != IGNORE
    eligible = tokens >= N_SPECIAL
    assert not (chosen & ~eligible).any(), "[CLS]/[SEP]/[PAD]/[UNK] are never picked"
    assert (inputs[~eligible] == tokens[~eligible]).all()
    assert (labels[chosen] == tokens[chosen]).all()
    assert chosen.sum() / eligible.sum() == pytest.approx(0.15, abs=0.005)
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == tokens[chosen]).sum().item() / n
    swapped = 1 - masked - kept
    assert masked == pytest.approx(0.8, abs=0.01)
    # Random replacements hit the original 3-mer 1/64 of the time, so "kept" is a bit above 10 %.
    assert kept == pytest.approx(0.1 + 0.1 / 64, abs=0.01)
    assert swapped == pytest.approx(0.1 - 0.1 / 64, abs=0.01)
    assert (inputs[chosen & (inputs != MASK)] >= N_SPECIAL).all()
    assert (inputs[~chosen] == tokens[~chosen]).all()


def test_nsp_pairs_are_halves_with_segment_ids() -> None:
    rng = np.random.default_rng(1)
    rows = list(np.random.default_rng(2).integers(N_SPECIAL, len(VOCAB), (200, 10)))
    tokens, segments, labels = nsp_batch(rows, rng)
    assert tokens.shape == (200, 13)
    assert (tokens[:, 0] == CLS).all()
    assert (tokens[:, 6] == SEP).all() and (tokens[:, 12] == SEP).all()
    assert (segments[:, :7] == 0).all() and (segments[:, 7:] == 1).all()
    for i, row in enumerate(rows):
        assert tokens[i, 1:6].tolist() == row[:5].tolist()
        is_own = tokens[i, 7:12].tolist() == row[5:].tolist()
        assert is_own == (labels[i].item() == NSP_IS_NEXT)
    assert (labels == NSP_RANDOM).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_nsp_with_unequal_lengths_pads_at_the_end() -> None:
    rows = [np.full(7, N_SPECIAL), np.full(4, N_SPECIAL + 1)]
    for seed in range(5):
        tokens, segments, _ = nsp_batch(rows, np.random.default_rng(seed))
        for tok, seg in zip(tokens.tolist(), segments.tolist(), strict=True):
            real = [t for t in tok if t != PAD]
            assert tok[: len(real)] == real and real.count(SEP) == 2 and real[-1] == SEP
            assert seg[: real.index(SEP) + 1] == [0] * (real.index(SEP) + 1)


# --- labels, weights, calibration ----------------------------------------------------------------


def names(taxid: int) -> str:
    return f"t{taxid}"


def test_classes_keep_frequent_taxa_and_put_unknown_last() -> None:
    labels = (
        [{"superkingdom": 2, "phylum": 10, "genus": 100}] * 5
        + [{"superkingdom": 2, "phylum": 10, "genus": 101}] * 2  # rare genus -> unknown
        + [{"superkingdom": 2759, "phylum": 0, "genus": 200}] * 4  # known genus, no phylum
        + [{"superkingdom": 10239, "phylum": 30, "genus": 0}]  # rare superkingdom
    )
    ranks = ["superkingdom", "phylum", "genus"]
    classes = build_classes(labels, ranks, 3, names)
    assert [c["taxid"] for c in classes["superkingdom"]] == [2, 2759, 0]
    assert classes["superkingdom"][-1] == {"name": "unknown", "taxid": 0, "parent": 0}
    assert [c["taxid"] for c in classes["phylum"]] == [10, 0]
    assert classes["phylum"][0]["parent"] == 0  # Bacteria
    assert classes["phylum"][-1]["parent"] == 2  # unknown -> unknown superkingdom
    genus = {c["taxid"]: c for c in classes["genus"]}
    assert genus[100]["parent"] == 0  # phylum 10
    assert genus[200]["parent"] == 1  # its phylum is unknown -> the unknown phylum
    assert classes["genus"][-1] == {"name": "unknown", "taxid": 0, "parent": 1}
    y = label_matrix(labels, ranks, classes)
    assert y[5].tolist() == [0, 0, 2]  # rare genus 101 -> unknown (index 2)
    assert y[-1].tolist() == [2, 1, 2]


def test_class_weights_formula() -> None:
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights(y, 4)
    # N = 10, C = 3 present classes: w_i = 10 / (3 n_i); the absent class gets 0.
    assert w.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3, 0.0])
    assert float((w[torch.from_numpy(y)]).sum()) == pytest.approx(10.0)  # balanced total


def test_learning_rate_decays_over_the_time_limit_when_that_runs_out_first() -> None:
    assert lr_factor(4, warmup=10, total=1000, schedule="linear") == pytest.approx(0.5)
    # 10 % of the steps but 75 % of the time gone: the decay follows the time.
    assert lr_factor(109, 10, 1000, "linear", time_share=0.75) == pytest.approx(0.25)
    assert lr_factor(109, 10, 1000, "linear", time_share=0.05) == pytest.approx(0.9)
    assert lr_factor(109, 10, 1000, "cosine", time_share=1.2) == pytest.approx(0.0)
    # with epochs as good as unbounded (the pipeline's runs), the warm-up ends with the first
    # 10 % of the time long before its 10**5 steps, and the decay runs over the rest
    assert lr_factor(50, 10**5, 10**6, "linear", time_share=0.05, time_warmup=0.1) == \
        pytest.approx(0.5)
    assert lr_factor(50, 10**5, 10**6, "linear", time_share=0.55, time_warmup=0.1) == \
        pytest.approx(0.5)
    # and a run that reaches its warm-up steps first warms up by steps
    assert lr_factor(4, 10, 100, "linear", time_share=0.01, time_warmup=0.1) == pytest.approx(0.5)


# --- fine-tuning on real genomes -----------------------------------------------------------------


def write_taxdump(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "nodes.dmp", "w") as nodes, open(folder / "names.dmp", "w") as names_:
        for taxid, parent, rank, name in TAXA:
            nodes.write(f"{taxid}\t|\t{parent}\t|\t{rank}\t|\t\t|\n")
            names_.write(f"{taxid}\t|\t{name}\t|\t\t|\tscientific name\t|\n")
    return folder


@pytest.fixture(scope="module")
def two_kingdoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300-nt fragments of a bacterium and a eukaryote, split 70/10/20 at random."""
    root = tmp_path_factory.mktemp("two_kingdoms")
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for genome_id, taxid, labels in (BACTERIUM, EUKARYOTE):
        genome = Genome(genome_id, taxid, DATA / "genomes" / f"{genome_id}.fa.gz", None, labels)
        frags, _ = sample_genome(genome, [(LengthSpec(300, 300), 250)], 0.01,
                                 np.random.default_rng(3))
        splits["train"] += frags[:175]
        splits["val"] += frags[175:200]
        splits["test"] += frags[200:]
    for name, frags in splits.items():
        write_split(frags, root / f"{name}.fa", root / f"{name}.labels.tsv")
    write_taxdump(root / "taxdump")
    return root


def finetune_options(data: Path, outdir: Path, pretrained: Path | None = None,
                  **loop: object) -> FinetuneOptions:
    return FinetuneOptions(data=TrainData(data), outdir=outdir, taxdump=data / "taxdump",
                           architecture=TINY, pretrained=pretrained, loop=replace(LOOP, **loop),
                           min_class_count=10)


def test_short_finetune_separates_two_superkingdoms(two_kingdoms: Path, tmp_path: Path) -> None:
    # the epochs stop it; the time limit only guards against a stalled machine
    bundle = finetune(finetune_options(two_kingdoms, tmp_path / "model", max_epochs=4, patience=2,
                                       time_limit=5))
    test = read_fragments(two_kingdoms / "test.fa")
    with torch.no_grad():
        logps = predict_logps(bundle.model, test, 300, 64, torch.device("cpu"))
    truth = [0 if rid.startswith("Akkermansia") else 1 for rid in test.ids]
    sk = [c["taxid"] for c in bundle.classes("superkingdom")]
    assert sk == [2, 2759, 0]
    accuracy = (logps[0].argmax(-1) == torch.tensor(truth)).float().mean().item()
    assert accuracy > 0.85, f"held-out superkingdom accuracy {accuracy:.2f} (chance 0.5)"
    config = bundle.config
    assert config["calibration"]["temperature"]["superkingdom"] > 0
    # the superkingdom threshold keeps validation fragments at >= 90 % precision
    threshold = config["calibration"]["thresholds"]["per_rank"]["superkingdom"]
    assert threshold["precision"] >= 0.9 and 0 < threshold["min_confidence"] < 1
    assert config["training"]["val_metrics"]["val_accuracy"]["superkingdom"] > 0.8
    assert config["vocab"] == list(VOCAB) and config["window_nt"] == 300
    lines = (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert {"epoch", "step", "train_loss", "val_loss", "val_accuracy"} <= set(record)

    # Save/load round trip: same outputs, no pickle anywhere.
    loaded = load_model(tmp_path / "model")
    tokens = classification_batch(test.seqs[:8], 300, None)
    with torch.no_grad():
        for a, b in zip(bundle.model(tokens), loaded.model(tokens), strict=True):
            assert torch.equal(a, b)
    assert loaded.classes("genus") == bundle.classes("genus")
    files = {p.suffix for p in (tmp_path / "model").rglob("*") if p.is_file()}
    assert files <= {".json", ".safetensors", ".jsonl"}


def test_bf16_finetune_learns_and_keeps_fp32_weights(two_kingdoms: Path, tmp_path: Path) -> None:
    # The GPU recipe (tools/train_gpu.sh): bf16 autocast, learning rate decayed over the time.
    bundle = finetune(finetune_options(two_kingdoms, tmp_path / "model", max_epochs=3,
                                       precision="bf16", decay_by_time=True, time_limit=5))
    assert {p.dtype for p in bundle.model.parameters()} == {torch.float32}
    test = read_fragments(two_kingdoms / "test.fa")
    with torch.no_grad():
        logps = predict_logps(bundle.model, test, 300, 64, torch.device("cpu"))
    truth = torch.tensor([0 if rid.startswith("Akkermansia") else 1 for rid in test.ids])
    accuracy = (logps[0].argmax(-1) == truth).float().mean().item()
    assert accuracy > 0.85, f"held-out superkingdom accuracy {accuracy:.2f} (chance 0.5)"
    records = [json.loads(x) for x in (tmp_path / "model" / "metrics.jsonl").open()]
    assert all(np.isfinite(r["train_loss"]) for r in records)
    assert records[-1]["lr"] < records[0]["lr"]


def test_resume_continues_the_step_count(two_kingdoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    finetune(finetune_options(two_kingdoms, out, max_steps=3, eval_every=2))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["loop"]["step"] == 3 and state["loop"]["batch_in_epoch"] == 3
    finetune(finetune_options(two_kingdoms, out, max_steps=5, resume="yes"))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["loop"]["step"] == 5
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 5]
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 5


def test_pretrain_writes_an_encoder_finetune_can_load(two_kingdoms: Path, tmp_path: Path) -> None:
    info = pretrain(PretrainOptions(TrainData(two_kingdoms), tmp_path / "pt", architecture=TINY,
                                    loop=replace(LOOP, max_steps=2, batch_size=8, lr=None)))
    assert info["training"]["steps"] == 2
    assert info["training"]["lr"] == 2e-3  # the tiny size's rate: the nearest width
    cfg, encoder, _ = load_pretrained(tmp_path / "pt")
    assert cfg.hidden == 32 and "token.weight" in encoder
    bundle = finetune(finetune_options(two_kingdoms, tmp_path / "ft", tmp_path / "pt", max_steps=1))
    # [MASK] is never a fine-tuning input, so its embedding keeps the pre-trained value (up to
    # one step of weight decay): proof that the encoder weights were loaded.
    assert torch.allclose(bundle.model.encoder.token.weight[MASK].detach(),
                          encoder["token.weight"][MASK], rtol=1e-3, atol=1e-7)
    assert bundle.config["training"]["pretrained"] == str(tmp_path / "pt")


def metrics_steps(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "metrics.jsonl").open()]


def test_auto_resume_needs_the_same_data_and_settings(
    two_kingdoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    finetune(finetune_options(two_kingdoms, out, max_steps=3, eval_every=2, resume="auto"))
    assert "resuming" not in capsys.readouterr().err  # nothing to resume yet
    bundle = finetune(finetune_options(two_kingdoms, out, max_steps=5, resume="auto"))
    assert "resuming at step 3 (epoch 1)" in capsys.readouterr().err
    assert bundle.config["training"]["resumed_at"] == [3]
    assert metrics_steps(out) == [2, 3, 5]
    # another seed draws other batches: the checkpoint does not fit, training starts over
    bundle = finetune(finetune_options(two_kingdoms, out, max_steps=2, resume="auto", seed=4))
    assert "checkpoint is for other data or settings" in capsys.readouterr().err
    assert bundle.config["training"]["resumed_at"] == []
    assert metrics_steps(out) == [2]


def test_a_spent_budget_is_not_trained_again(two_kingdoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    # a limit of 0.06 s covering all runs: the first run stops after its first step
    budget = {"time_limit": 0.001, "time_limit_total": True, "resume": "auto"}
    finetune(finetune_options(two_kingdoms, out, **budget))
    first = json.loads((out / "checkpoint" / "state.json").read_text())["loop"]
    assert first["step"] >= 1 and first["finished"]
    bundle = finetune(finetune_options(two_kingdoms, out, **budget))
    again = json.loads((out / "checkpoint" / "state.json").read_text())["loop"]
    assert again["step"] == first["step"] and again["history"] == first["history"]
    assert bundle.config["training"]["resumed_at"] == [first["step"]]


def test_training_starts_from_a_model_folder_encoder(
    two_kingdoms: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The pipeline's default: continue from the encoder of `--model` (here a random model)."""
    from safetensors.torch import load_file

    encoder = {k.removeprefix("encoder."): v
               for k, v in load_file(tiny_model_dir / "model.safetensors").items()
               if k.startswith("encoder.")}
    info = pretrain(PretrainOptions(TrainData(two_kingdoms), tmp_path / "pt",
                                    encoder=tiny_model_dir, loop=replace(LOOP, max_steps=1)))
    # the model's 1500-nt window needs 503 positions for [CLS] A [SEP] B [SEP]; it has 502
    assert info["window_nt"] == 1497 and info["architecture"]["hidden"] == 32
    bundle = finetune(finetune_options(two_kingdoms, tmp_path / "ft", tiny_model_dir,
                                       max_steps=1))
    assert bundle.config["window_nt"] == 1500  # the model's, not TINY's 300
    assert torch.allclose(bundle.model.encoder.token.weight[MASK].detach(),
                          encoder["token.weight"][MASK], rtol=1e-3, atol=1e-7)
    assert bundle.config["training"]["pretrained"] == str(tiny_model_dir)


def test_val_subset_is_fixed_and_keeps_labels_aligned(two_kingdoms: Path) -> None:
    val = read_fragments(two_kingdoms / "val.fa")
    labels = [{"superkingdom": i} for i in range(len(val))]
    subset, kept = val_subset(val, labels, 7, seed=3)
    assert len(subset) == len(kept) == 7
    for rid, seq, label in zip(subset.ids, subset.seqs, kept, strict=True):
        i = val.ids.index(rid)
        assert val.seqs[i] == seq and label == {"superkingdom": i}
    assert val_subset(val, labels, 7, seed=3)[0].ids == subset.ids  # the same every run
    assert val_subset(val, labels, 0, seed=3)[0] is val  # 0: all of them
