"""Batched prediction on real reads: one row per read, strand symmetry, windows, formats."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hytax.cli import main
from hytax.errors import HytaxError
from hytax.model import load_model
from hytax.predict import PredictOptions, Predictor, predict_file
from hytax.seqio import Read, reverse_complement


def _fastq(path: Path, reads: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"@{n}\n{s}\n+\n{'I' * len(s)}\n" for n, s in reads))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


FP32 = PredictOptions(device="cpu", precision="fp32", progress="off")


def test_one_row_per_read_in_order(tmp_path: Path, tiny_model_dir: Path, ecoli: str) -> None:
    reads = [(f"r{i}", ecoli[i * 300 : i * 300 + 150]) for i in range(30)]
    reads += [("onlyN", "N" * 150), ("tiny", "AC"), ("long", ecoli[:4000])]
    out = tmp_path / "p.tsv"
    assert (
        predict_file(tiny_model_dir, _fastq(tmp_path / "r.fq", reads), None, out, None, FP32) == 33
    )
    rows = _rows(out)
    assert [r["read_id"] for r in rows] == [n for n, _ in reads]
    assert rows[30]["superkingdom"] == "NA" and rows[31]["genus_taxid"] == "0"
    assert rows[32]["length"] == "4000"
    names = {c["name"] for c in load_model(tiny_model_dir).classes("superkingdom")}
    assert all(
        r["superkingdom"] in names and 0 < float(r["superkingdom_prob"]) <= 1 for r in rows[:30]
    )


def test_read_and_reverse_complement_agree(tiny_model_dir: Path, ecoli: str) -> None:
    predictor = Predictor(load_model(tiny_model_dir), replace(FP32, both_strands=True))
    seqs = [ecoli[i * 500 : i * 500 + n] for i, n in enumerate([150, 151, 152, 300])]
    forward = list(predictor.rows(Read(f"f{i}", s) for i, s in enumerate(seqs)))
    reverse = list(predictor.rows(Read(f"r{i}", reverse_complement(s)) for i, s in enumerate(seqs)))
    for f, r in zip(forward, reverse, strict=True):
        for pf, pr in zip(f.probs, r.probs, strict=True):
            assert pf == pytest.approx(pr, abs=1e-5)
    one_strand = Predictor(
        load_model(tiny_model_dir),
        PredictOptions(device="cpu", precision="fp32", both_strands=False),
    )
    single = next(iter(one_strand.rows([Read("f", seqs[3])])))
    assert abs(single.probs[0] - forward[3].probs[0]).max() > 1e-6, "strands must both count"


def test_batch_size_does_not_change_results(tiny_model_dir: Path, ecoli: str) -> None:
    reads = [Read(f"r{i}", ecoli[i * 97 : i * 97 + 100 + 37 * i]) for i in range(40)]
    big = list(Predictor(load_model(tiny_model_dir), FP32).rows(reads))
    small_opts = PredictOptions(device="cpu", precision="fp32", batch_tokens=200)
    small = list(Predictor(load_model(tiny_model_dir), small_opts).rows(reads))
    for a, b in zip(big, small, strict=True):
        assert a.probs[2] == pytest.approx(b.probs[2], abs=1e-5)


def test_int8_default_on_cpu_stays_close(tiny_model_dir: Path, ecoli: str) -> None:
    reads = [Read(f"r{i}", ecoli[i * 400 : i * 400 + 1500]) for i in range(8)]
    exact = list(Predictor(load_model(tiny_model_dir), FP32).rows(reads))
    fast = Predictor(load_model(tiny_model_dir), PredictOptions(device="cpu"))
    assert fast.precision == "int8"
    for a, b in zip(exact, fast.rows(reads), strict=True):
        assert abs(a.probs[0] - b.probs[0]).max() < 0.02


def test_windows_each_and_running(tmp_path: Path, tiny_model_dir: Path, ecoli: str) -> None:
    fq = _fastq(tmp_path / "l.fq", [("long", ecoli[:4000]), ("short", ecoli[:200])])
    out = tmp_path / "w.tsv"
    predict_file(tiny_model_dir, fq, None, out, None, PredictOptions(device="cpu", windows="each"))
    assert [(r["read_id"], r["window"]) for r in _rows(out)] == [
        ("long", "0"),
        ("long", "1500"),
        ("long", "2500"),
        ("short", "0"),
    ]
    running = PredictOptions(device="cpu", windows="each", stride_nt=500)
    predict_file(tiny_model_dir, fq, None, out, None, running)
    assert [r["window"] for r in _rows(out)][:6] == ["0", "500", "1000", "1500", "2000", "2500"]


def test_bertax_format_and_probabilities(tmp_path: Path, tiny_model_dir: Path, ecoli: str) -> None:
    fq = _fastq(tmp_path / "r.fq", [(f"r{i}", ecoli[i * 150 : i * 150 + 150]) for i in range(5)])
    out, probs = tmp_path / "b.tsv", tmp_path / "p.jsonl"
    predict_file(
        tiny_model_dir, fq, None, out, probs, PredictOptions(device="cpu", bertax_format=True)
    )
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["id", "superkingdom", "%", "phylum", "%", "genus", "%"]
    first = lines[1].split("\t")
    assert first[0] == "r0" and first[2].isdigit() and 0 <= int(first[2]) <= 100
    records = [json.loads(line) for line in probs.read_text().splitlines()]
    assert len(records) == 5
    assert sum(records[0]["genus"].values()) == pytest.approx(1, abs=1e-3)
    assert max(records[0]["superkingdom"].values()) == pytest.approx(int(first[2]) / 100, abs=0.006)


def test_cli_reports_bad_input_without_traceback(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.fq"
    bad.write_text("@r1\nACGTACGT\n+\nII\n")
    code = main(
        ["predict", "--model", str(tiny_model_dir), "-i", str(bad), "-o", str(tmp_path / "o.tsv")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.fq" in err and "Traceback" not in err


def test_failure_half_way_leaves_no_table(tmp_path: Path, tiny_model_dir: Path, ecoli: str) -> None:
    """A bad record after thousands of good ones: neither table appears, not even a partial one."""
    reads = [(f"r{i}", ecoli[i * 20 : i * 20 + 150]) for i in range(5000)]
    fq = _fastq(tmp_path / "r.fq", reads)
    fq.write_text(fq.read_text() + "@broken\nACGT\n+\nII\n")
    out, probs = tmp_path / "out" / "p.tsv", tmp_path / "out" / "p.jsonl"
    out.parent.mkdir()
    with pytest.raises(HytaxError, match=r"r\.fq: record 5001 \(line 20004\): quality length 2"):
        predict_file(tiny_model_dir, fq, None, out, probs, FP32)
    assert list(out.parent.iterdir()) == []
    out.write_text("an earlier result\n")
    with pytest.raises(HytaxError):
        predict_file(tiny_model_dir, fq, None, out, probs, FP32)
    assert out.read_text() == "an earlier result\n" and not probs.exists()
