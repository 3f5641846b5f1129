"""Sequence input on real reads: formats, pairs, normalisation and the documented errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hytax.seqio import (
    PAIR_SPACER,
    SequenceFormatError,
    read_records,
    read_units,
    reverse_complement,
    write_fasta,
)


def _fastq(reads: list[tuple[str, str]]) -> str:
    return "".join(f"@{name}\n{seq}\n+\n{'I' * len(seq)}\n" for name, seq in reads)


def test_fasta_fastq_plain_and_gzip_agree(tmp_path: Path, ecoli: str) -> None:
    reads = [(f"r{i} comment", ecoli[i * 200 : i * 200 + 150]) for i in range(20)]
    (tmp_path / "a.fq").write_text(_fastq(reads))
    with gzip.open(tmp_path / "a.fq.gz", "wt") as fh:
        fh.write(_fastq(reads))
    (tmp_path / "a.fa").write_text("".join(f">{n}\n{s[:70]}\n{s[70:]}\n" for n, s in reads))
    got = [list(read_records(tmp_path / name)) for name in ("a.fq", "a.fq.gz", "a.fa")]
    assert got[0] == got[1] == got[2]
    assert [r.id for r in got[0]] == [f"r{i}" for i in range(20)]
    assert got[0][3].seq == ecoli[600:750]


def test_lower_case_and_rna_are_normalised(tmp_path: Path) -> None:
    (tmp_path / "x.fa").write_text(">x\nacgu\nNNRy\n")
    assert next(iter(read_records(tmp_path / "x.fa"))).seq == "ACGTNNRY"


def test_pairs_are_one_unit_on_mate1_strand(tmp_path: Path, ecoli: str) -> None:
    fragment = ecoli[1000:1400]
    mate1, mate2 = fragment[:150], reverse_complement(fragment[-150:])
    (tmp_path / "r1.fq").write_text(_fastq([("p1/1", mate1)]))
    (tmp_path / "r2.fq").write_text(_fastq([("p1/2", mate2)]))
    (unit,) = read_units(tmp_path / "r1.fq", tmp_path / "r2.fq")
    assert unit.id == "p1"
    assert unit.seq == fragment[:150] + PAIR_SPACER + fragment[-150:]


def test_mate_mismatch_names_file_and_record(tmp_path: Path, ecoli: str) -> None:
    (tmp_path / "r1.fq").write_text(_fastq([("a/1", ecoli[:150]), ("b/1", ecoli[:150])]))
    (tmp_path / "r2.fq").write_text(_fastq([("a/2", ecoli[:150]), ("c/2", ecoli[:150])]))
    with pytest.raises(SequenceFormatError, match=r"r2\.fq: record 2 is 'c'"):
        list(read_units(tmp_path / "r1.fq", tmp_path / "r2.fq"))
    (tmp_path / "r3.fq").write_text(_fastq([("a/2", ecoli[:150])]))
    with pytest.raises(SequenceFormatError, match=r"r3.fq: ends at record 1"):
        list(read_units(tmp_path / "r1.fq", tmp_path / "r3.fq"))


def test_empty_file_is_zero_reads(tmp_path: Path) -> None:
    (tmp_path / "e.fq").write_text("")
    with gzip.open(tmp_path / "e.fq.gz", "wt"):
        pass
    assert list(read_records(tmp_path / "e.fq")) == []
    assert list(read_records(tmp_path / "e.fq.gz")) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("@r1\nACGTACGT\n+\nIIII\n", r"bad\.fq: malformed record at line"),
        ("@r1\nACGTACGT\n+\nIIIIIIII\n@r2\nACGT\n", r"bad\.fq: malformed record"),
        ("this is not a sequence file\n", r"bad\.fq: .*(FASTA|FASTQ|malformed)"),
    ],
)
def test_malformed_input_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.fq").write_text(content)
    with pytest.raises(SequenceFormatError, match=message):
        list(read_records(tmp_path / "bad.fq"))


def test_binary_and_truncated_gzip(tmp_path: Path, ecoli: str) -> None:
    (tmp_path / "bin.fq").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SequenceFormatError, match=r"bin.fq"):
        list(read_records(tmp_path / "bin.fq"))
    blob = gzip.compress(_fastq([(f"r{i}", ecoli[i : i + 150]) for i in range(200)]).encode())
    (tmp_path / "cut.fq.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SequenceFormatError, match=r"cut.fq.gz"):
        list(read_records(tmp_path / "cut.fq.gz"))
    with pytest.raises(SequenceFormatError, match=r"missing.fq: no such file"):
        list(read_records(tmp_path / "missing.fq"))


def test_write_fasta_round_trip(tmp_path: Path, ecoli: str) -> None:
    reads = list(read_units(_write(tmp_path / "in.fq", _fastq([("a", ecoli[:99])]))))
    assert write_fasta(iter(reads), tmp_path / "out.fa.gz") == 1
    assert list(read_records(tmp_path / "out.fa.gz")) == reads


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
