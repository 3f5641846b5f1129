"""Property tests of `hytax prepare` (the library function): any valid FASTA/FASTQ gives exactly
one unit per read with the same id and sequence; any of the corruptions users meet gives a
HytaxError naming the file, the record and the line, never another exception."""

from __future__ import annotations

import gzip
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hytax.errors import HytaxError
from hytax.seqio import PAIR_SPACER, prepare, reverse_complement

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Read ids as instruments and SRA write them, and worse: '|', ':', '#', '@', '>' and any other
# printable non-space character. A trailing /1 or /2 is a mate suffix, so ids avoid ending so.
ID_CHARS = "".join(c for c in string.printable if not c.isspace())
IDS = st.text(ID_CHARS, min_size=1, max_size=24).filter(lambda i: i[-2:] not in ("/1", "/2"))
COMMENTS = st.one_of(st.just(""), st.text(ID_CHARS + " \t", max_size=20).map(lambda c: " " + c))
# Upper and lower case, RNA U, IUPAC codes; empty reads exist too.
SEQS = st.text("ACGTNacgtnURYKMSWBDHVryk", max_size=300)
# Quality without '+' and '@', so a removed '+' line is always detectable.
QUALS = "!#$%&0123456789:;<=>?ABCDEFGHIJ"


@dataclass
class Record:
    id: str
    comment: str
    seq: str
    qual: str


@st.composite
def records(draw: st.DrawFn, min_size: int = 0) -> list[Record]:
    ids = draw(st.lists(IDS, min_size=min_size, max_size=40, unique=True))
    out = []
    for rid in ids:
        seq = draw(SEQS)
        qual = draw(st.text(QUALS, min_size=len(seq), max_size=len(seq)))
        out.append(Record(rid, draw(COMMENTS), seq, qual))
    return out


@dataclass
class Layout:
    fastq: bool
    gz: bool
    crlf: bool
    wrap: int | None  # FASTA line width; None: one line per sequence
    plus_repeats_header: bool
    final_newline: bool


LAYOUTS = st.builds(
    Layout,
    fastq=st.booleans(),
    gz=st.booleans(),
    crlf=st.booleans(),
    wrap=st.one_of(st.none(), st.integers(1, 80)),
    plus_repeats_header=st.booleans(),
    final_newline=st.booleans(),
)


def record_lines(record: Record, layout: Layout, suffix: str = "") -> list[str]:
    header = f"{record.id}{suffix}{record.comment}"
    if layout.fastq:
        plus = "+" + (header if layout.plus_repeats_header else "")
        return ["@" + header, record.seq, plus, record.qual]
    width = layout.wrap or max(len(record.seq), 1)
    chunks = [record.seq[i : i + width] for i in range(0, len(record.seq), width)]
    return [">" + header, *chunks]


def file_lines(recs: list[Record], layout: Layout, suffix: str = "") -> list[list[str]]:
    """Lines per record."""
    return [record_lines(r, layout, suffix) for r in recs]


def write(path: Path, lines: list[str], layout: Layout) -> Path:
    newline = "\r\n" if layout.crlf else "\n"
    # an empty last line (an empty read's quality) needs its line break to exist at all
    final = layout.final_newline or lines[-1:] == [""]
    text = newline.join(lines) + (newline if final and lines else "")
    data = text.encode("latin-1")
    path.write_bytes(gzip.compress(data) if layout.gz else data)
    return path


def units_written(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    assert len(lines) % 2 == 0
    return [(lines[i][1:], lines[i + 1]) for i in range(0, len(lines), 2)]


def name(layout: Layout, stem: str = "reads") -> str:
    return f"{stem}.{'fq' if layout.fastq else 'fa'}{'.gz' if layout.gz else ''}"


def expected_seq(seq: str) -> str:
    return seq.upper().replace("U", "T")


# --- valid input ---------------------------------------------------------------------------------


@PROPERTY
@given(recs=records(), layout=LAYOUTS)
def test_valid_files_give_one_unit_per_read(recs: list[Record], layout: Layout) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lines = [line for block in file_lines(recs, layout) for line in block]
        path = write(Path(tmp) / name(layout), lines, layout)
        out = Path(tmp) / "out.fasta"
        assert prepare([(path, None)], out) == len(recs)
        assert units_written(out) == [(r.id, expected_seq(r.seq)) for r in recs]


@PROPERTY
@given(recs=records(), layout=LAYOUTS, mate2_seqs=st.lists(SEQS, min_size=40, max_size=40))
def test_valid_pairs_give_one_unit_per_pair(
    recs: list[Record], layout: Layout, mate2_seqs: list[str]
) -> None:
    mates2 = [
        Record(r.id, r.comment, s, "I" * len(s)) for r, s in zip(recs, mate2_seqs, strict=False)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        r1 = [line for block in file_lines(recs, layout, "/1") for line in block]
        r2 = [line for block in file_lines(mates2, layout, "/2") for line in block]
        path1 = write(Path(tmp) / name(layout, "r_1"), r1, layout)
        path2 = write(Path(tmp) / name(layout, "r_2"), r2, layout)
        out = Path(tmp) / "out.fasta"
        assert prepare([(path1, path2)], out) == len(recs)
        assert units_written(out) == [
            (a.id, expected_seq(a.seq) + PAIR_SPACER + reverse_complement(expected_seq(b.seq)))
            for a, b in zip(recs, mates2, strict=True)
        ]


# --- corrupted input -----------------------------------------------------------------------------

# Each corruption damages record k (0-based) and says which 1-based line of the file the error
# must name, given the lines of every record; None: any line of record k or later.
FASTQ_CORRUPTIONS = (
    "non_ascii",
    "quality_length",
    "no_plus",
    "header_sign",
    "truncated",
    "blank_line",
    "non_letter",
    "no_id",
)
FASTA_CORRUPTIONS = ("non_ascii", "text_before_first_header", "non_letter", "no_id")


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[Layout, list[str], int, int, str]:
    """(layout, lines of the damaged file, record number, line number, words of the message)."""
    layout = draw(LAYOUTS)
    recs = draw(records(min_size=1))
    # the damaged record has a non-empty sequence, so there is a base to damage
    k = draw(st.integers(0, len(recs) - 1))
    if not recs[k].seq:
        recs[k].seq, recs[k].qual = "ACGT", "IIII"
    blocks = file_lines(recs, layout)
    kinds = FASTQ_CORRUPTIONS if layout.fastq else FASTA_CORRUPTIONS
    kind = draw(st.sampled_from(kinds))
    if kind == "text_before_first_header":
        k = 0
    start = sum(len(b) for b in blocks[:k])  # lines before record k
    block = blocks[k]
    if kind == "non_ascii":
        at = draw(st.integers(0, len(block) - 1))
        column = draw(st.integers(0, len(block[at])))
        byte = chr(draw(st.integers(0x80, 0xFF)))
        block[at] = block[at][:column] + byte + block[at][column:]
        line, words = start + at + 1, f"non-ASCII byte 0x{ord(byte):02x} at column {column + 1}"
        if not layout.fastq and at == column == 0:
            k = max(k - 1, 0)  # before its '>', the line is no header: it ends the record before
    elif kind == "quality_length":
        block[3] = block[3] + "I" if draw(st.booleans()) else block[3][:-1]
        line, words = start + 4, "quality length"
    elif kind == "no_plus":
        del block[2]
        line, words = start + 3, "expected the '+' line"
    elif kind == "header_sign":
        block[0] = draw(st.sampled_from(">#A ")) + block[0][1:]
        line, words = start + 1, "expected a header starting with '@'"
    elif kind == "truncated":
        keep = draw(st.integers(1, 3))
        del block[keep:]
        del blocks[k + 1 :]
        layout.final_newline = draw(st.booleans())
        line, words = start + keep, "the file ends inside the record"
    elif kind == "blank_line":
        block.insert(0, "")
        line, words = start + 1, "expected a header starting with '@', found a blank line"
    elif kind == "non_letter":
        at = draw(st.integers(1, len(block) - 1)) if not layout.fastq else 1
        if not block[at]:  # a wrapped FASTA record has no empty sequence line, but be safe
            block[at] = "A"
        column = draw(st.integers(0, len(block[at]) - 1))
        # dnaio drops whitespace at either end of a FASTA sequence line (harmless), so a space
        # is a corruption only inside one
        inside = 0 < column < len(block[at]) - 1
        chars = "-.*0123456789 =" if layout.fastq or inside else "-.*0123456789="
        char = draw(st.sampled_from(chars))
        block[at] = block[at][:column] + char + block[at][column + 1 :]
        line, words = start + 1, f"sequence has {char!r} at position"
    elif kind == "no_id":
        block[0] = block[0][0] + draw(st.sampled_from(["", " ", "\t", "  "]))
        if layout.fastq and len(block[2]) > 1:
            block[2] = "+"
        line, words = start + 1, "the header has no read id"
    else:  # text_before_first_header
        blocks.insert(0, [draw(st.sampled_from(["ACGT", "sequence", "@r1", ";comment"]))])
        line, words = 1, "expected a header starting with '>'"
    lines = [text for b in blocks for text in b]
    return layout, lines, k + 1, line, words


@PROPERTY
@given(case=corrupted())
def test_corruptions_name_file_record_and_line(
    case: tuple[Layout, list[str], int, int, str],
) -> None:
    layout, lines, record, line, words = case
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / name(layout), lines, layout)
        out = Path(tmp) / "out.fasta.gz"
        try:
            prepare([(path, None)], out)
        except HytaxError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"no error for {lines!r}")
        assert message.startswith(f"{path}: record {record} (line {line}): "), message
        assert words in message, message
        assert sorted(p.name for p in Path(tmp).iterdir()) == [path.name], "output left behind"


@PROPERTY
@given(recs=records(min_size=5), layout=LAYOUTS, cut=st.floats(0.05, 0.95))
def test_truncated_compressed_files_name_a_record(
    recs: list[Record], layout: Layout, cut: float
) -> None:
    layout.gz = True
    with tempfile.TemporaryDirectory() as tmp:
        path = write(
            Path(tmp) / name(layout), [x for b in file_lines(recs, layout) for x in b], layout
        )
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        try:
            prepare([(path, None)], Path(tmp) / "out.fasta")
        except HytaxError as exc:
            message = str(exc)
        else:
            raise AssertionError("a truncated gzip file was accepted")
        assert message.startswith(f"{path}: "), message
        assert " (line " in message or "from line 1 on" in message, message
