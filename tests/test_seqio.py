"""Sequence input on real reads: formats, pairs, normalisation and the documented errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from hytax import seqio
from hytax.atomic import atomic_path
from hytax.cli import main
from hytax.seqio import (
    PAIR_SPACER,
    DuplicateReadError,
    SequenceFormatError,
    prepare,
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
        ("@r1\nACGTACGT\n+\nIIII\n", r"bad\.fq: record 1 \(line 4\): quality length 4, sequence"),
        (
            "@r1\nACGTACGT\n+\nIIIIIIII\n@r2\nACGT\n",
            r"bad\.fq: record 2 \(line 6\): the file ends inside the record",
        ),
        ("@r1\nACGT\nIIII\n", r"bad\.fq: record 1 \(line 3\): expected the '\+' line"),
        ("this is not a sequence file\n", r"bad\.fq: record 1 \(line 1\): expected a header"),
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


def _fasta_text(reads: list[tuple[str, str]]) -> str:
    """FASTA with sequences wrapped at 60 nt, as genome tools write it."""
    return "".join(
        f">{name}\n" + "".join(f"{seq[i : i + 60]}\n" for i in range(0, len(seq), 60))
        for name, seq in reads
    )


def _save(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# --- errors name the record and line -------------------------------------------------------------


@pytest.mark.parametrize("name", ["reads.fq", "reads.fq.gz", "reads.fa", "reads.fa.gz"])
def test_non_ascii_byte_names_its_record_and_line(tmp_path: Path, ecoli: str, name: str) -> None:
    """dnaio reads in blocks and used to report such a byte "after record 0"."""
    reads = [(f"r{i}", ecoli[i * 150 : i * 150 + 150]) for i in range(80)]
    fastq = ".fq" in name
    text = _fastq(reads) if fastq else _fasta_text(reads)
    lines = text.splitlines(keepends=True)
    # record 51 (index 50): its sequence line in FASTQ, its second sequence line in FASTA
    line = 4 * 50 + 2 if fastq else 4 * 50 + 3
    lines[line - 1] = lines[line - 1][:10] + "\u00e9" + lines[line - 1][11:]
    path = _save(tmp_path / name, "".join(lines))
    with pytest.raises(SequenceFormatError) as caught:
        list(read_records(path))
    assert str(caught.value).startswith(f"{path}: record 51 (line {line}): non-ASCII byte 0xc3")


@pytest.mark.parametrize("name", ["reads.fq", "reads.fq.gz"])
def test_broken_fastq_record_is_named(tmp_path: Path, ecoli: str, name: str) -> None:
    reads = [(f"r{i}", ecoli[i * 150 : i * 150 + 150]) for i in range(80)]
    lines = _fastq(reads).splitlines(keepends=True)
    lines[4 * 60 + 3] = "I" * 149 + "\n"  # quality of record 61
    path = _save(tmp_path / name, "".join(lines))
    with pytest.raises(SequenceFormatError, match=r"record 61 \(line 244\): quality length 149"):
        list(read_records(path))


def test_truncated_gzip_names_the_record(tmp_path: Path, ecoli: str) -> None:
    reads = [(f"r{i}", ecoli[i : i + 150]) for i in range(2000)]
    blob = gzip.compress(_fastq(reads).encode())
    path = tmp_path / "cut.fq.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SequenceFormatError) as caught:
        list(read_records(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: record ")
    assert "truncated or corrupt" in message
    # every record before the one named is complete
    record = int(message.split("record ")[1].split(" ")[0])
    assert 1 < record < 2000


def test_corrupt_gzip_stream_is_a_format_error(tmp_path: Path, ecoli: str) -> None:
    """Garbage inside a gzip member raised the decompressor's own error (a traceback)."""
    blob = gzip.compress(_fastq([(f"r{i}", ecoli[i : i + 150]) for i in range(500)]).encode())
    path = tmp_path / "garbled.fq.gz"
    path.write_bytes(blob[:100] + bytes(range(256)) * 4 + blob[1124:])
    with pytest.raises(SequenceFormatError, match=r"garbled\.fq\.gz: .*(line|record) \d+"):
        list(read_records(path))


def test_header_without_id_and_non_letters_are_named(tmp_path: Path) -> None:
    path = _save(tmp_path / "x.fa", ">a\nACGT\n\n>b\nAC\nGT-A\n> \nACGT\n")
    with pytest.raises(SequenceFormatError, match=r"x\.fa: record 2 \(line 4\): read 'b'.*'-'"):
        list(read_records(path))
    path = _save(tmp_path / "y.fq", "@a\nACGT\n+\nIIII\n@\nACGT\n+\nIIII\n")
    with pytest.raises(SequenceFormatError, match=r"y\.fq: record 2 \(line 5\): .*no read id"):
        list(read_records(path))


# --- atomic outputs ------------------------------------------------------------------------------


def test_atomic_path_keeps_suffixes_and_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "s.reads.fasta.gz"
    target.write_text("old")
    with atomic_path(target) as partial:
        assert partial.parent == tmp_path and partial.name.endswith(".reads.fasta.gz")
        assert partial.name != target.name
        partial.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new" and os.listdir(tmp_path) == [target.name]
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as partial:
        partial.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "new" and os.listdir(tmp_path) == [target.name]


def test_prepare_leaves_no_output_on_error(tmp_path: Path, ecoli: str) -> None:
    reads = [(f"r{i}", ecoli[i * 150 : i * 150 + 150]) for i in range(200)]
    lines = _fastq(reads).splitlines(keepends=True)
    del lines[4 * 150 + 2]  # record 151 loses its '+' line
    bad = _save(tmp_path / "bad.fq.gz", "".join(lines))
    out = tmp_path / "out" / "s.reads.fasta.gz"
    out.parent.mkdir()
    with pytest.raises(SequenceFormatError, match=r"record 151 \(line 603\): expected the '\+'"):
        prepare([(bad, None)], out)
    assert list(out.parent.iterdir()) == []


# --- hytax prepare: runs and duplicate ids -------------------------------------------------------


def test_duplicate_id_names_file_id_and_both_records(tmp_path: Path, ecoli: str) -> None:
    reads = [(f"r{i}", ecoli[i * 150 : i * 150 + 150]) for i in range(100)]
    reads[76] = ("r12 another comment", reads[76][1])
    path = _save(tmp_path / "dup.fq.gz", _fastq(reads))
    out = tmp_path / "s.reads.fasta.gz"
    with pytest.raises(DuplicateReadError) as caught:
        prepare([(path, None)], out)
    assert str(caught.value) == (
        f"{path}: record 77 has read id 'r12', already at record 13: "
        "read ids must be unique within a sample"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_duplicate_across_runs_names_both_files(tmp_path: Path, ecoli: str) -> None:
    run1 = [(f"a{i}/1", ecoli[i * 150 : i * 150 + 150]) for i in range(20)]
    run2 = [(f"b{i}/1", ecoli[i * 150 : i * 150 + 150]) for i in range(20)]
    run2[5] = ("a3/1", run2[5][1])
    files = {}
    for name, reads in (("a", run1), ("b", run2)):
        files[name] = (
            _save(tmp_path / f"{name}_R1.fq", _fastq(reads)),
            _save(tmp_path / f"{name}_R2.fq", _fastq([(n[:-1] + "2", s) for n, s in reads])),
        )
    with pytest.raises(DuplicateReadError) as caught:
        prepare([files["a"], files["b"]], tmp_path / "out.fa")
    assert str(caught.value).startswith(
        f"{files['b'][0]}: record 6 has read id 'a3', already at record 4 of {files['a'][0]}:"
    )
    with pytest.raises(DuplicateReadError, match=r"already at record 1 of .*\(given twice\?\)"):
        prepare([files["a"], files["a"]], tmp_path / "out.fa")


def test_hash_collisions_are_not_duplicates(
    tmp_path: Path, ecoli: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only 8 bytes per read are kept; ids sharing a hash must be checked on a second pass."""
    monkeypatch.setattr(seqio, "_id_hash", len)  # every id of one length collides
    reads = [(f"r{i:03d}", ecoli[i * 150 : i * 150 + 150]) for i in range(300)]
    path = _save(tmp_path / "many.fq", _fastq(reads))
    out = tmp_path / "out.fa"
    assert prepare([(path, None)], out) == 300
    assert [r.id for r in read_records(out)] == [n for n, _ in reads]
    _save(path, _fastq([*reads, ("r123", "ACGT")]))
    with pytest.raises(DuplicateReadError, match=r"record 301 has read id 'r123', already at re"):
        prepare([(path, None)], out)


def test_prepare_cli_runs_one_after_another(
    tmp_path: Path, ecoli: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fragment = ecoli[5000:5400]
    runs = []
    for run in ("x", "y"):
        r1 = _save(
            tmp_path / f"{run}_1.fq.gz", _fastq([(f"{run}{i}/1", fragment[:150]) for i in range(3)])
        )
        mate2 = reverse_complement(fragment[-150:])
        r2 = _save(tmp_path / f"{run}_2.fq.gz", _fastq([(f"{run}{i}/2", mate2) for i in range(3)]))
        runs += ["--input", str(r1), "--input2", str(r2)]
    out = tmp_path / "p.reads.fasta.gz"
    assert main(["prepare", *runs, "--output", str(out)]) == 0
    units = list(read_records(out))
    assert [u.id for u in units] == ["x0", "x1", "x2", "y0", "y1", "y2"]
    assert {u.seq for u in units} == {fragment[:150] + PAIR_SPACER + fragment[-150:]}
    single = ["--input", str(tmp_path / "x_1.fq.gz"), "--input", str(tmp_path / "y_1.fq.gz")]
    assert main(["prepare", *single, "--output", str(out)]) == 0
    assert [u.seq for u in read_records(out)] == [fragment[:150]] * 6
    capsys.readouterr()
    assert main(["prepare", *single, "--input2", runs[3], "--output", str(out)]) == 2
    assert "2 --input but 1 --input2" in capsys.readouterr().err
