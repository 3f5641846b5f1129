"""route and merge against a real MMseqs2 run on reads cut from real genomes."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_DATA as SHARED
from conftest import full_taxonomy

from hytax.errors import HytaxError
from hytax.merge import BERTAX_COLUMNS, CLAIMS_HEADER, MERGED_HEADER, merge, route
from hytax.seqio import PAIR_SPACER, read_records
from hytax.taxonomy import RANKS, Taxonomy

READ_LEN = 150
# in the reference (first 150 kb of each) / not in it (another genus)
REFERENCE = {"Ecoli_K12_MG1655": 511145, "Saureus_COL": 93062, "Lambda_phage": 10710}
ABSENT = {"Hpylori_ELS37": 1055527}
EXTRA_TAXA = [209, 1239, 2759, 35493, 3701, 1386]  # for BERTax answers: Helicobacter, ...


@dataclass(frozen=True)
class MmseqsRun:
    units: Path  # prepared reads
    lca: Path
    aln: Path
    taxdump: Path  # a real 2013 subset
    db: Path  # the MMseqs2 seqTaxDB prefix
    origin: dict[str, str]  # read id -> genome id


def _genome(genome_id: str, length: int) -> str:
    return next(iter(read_records(SHARED / "genomes" / f"{genome_id}.fa.gz"))).seq[:length]


def _mutate(seq: str, rate: float, rng: random.Random) -> str:
    bases = list(seq)
    for i in rng.sample(range(len(bases)), int(rate * len(bases))):
        bases[i] = rng.choice([b for b in "ACGT" if b != bases[i]])
    return "".join(bases)


def _reads(rng: random.Random) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, str]]:
    reads: list[tuple[str, str]] = []
    origin: dict[str, str] = {}
    refs: dict[str, str] = {}
    for genome in (*REFERENCE, *ABSENT):
        seq = _genome(genome, 150_000)
        if genome in REFERENCE:
            refs[genome] = seq
        n = 10 if genome == "Ecoli_K12_MG1655" else 20
        for i in range(n):
            start = rng.randrange(len(seq) - READ_LEN)
            reads.append((f"{genome}_{i}", seq[start:start + READ_LEN]))
            origin[f"{genome}_{i}"] = genome
    # E. coli reads with 8 % substitutions: a hit, but a far one (identity about 0.92)
    ecoli = refs["Ecoli_K12_MG1655"]
    for i in range(20):
        start = rng.randrange(len(ecoli) - READ_LEN)
        rid = f"Ecoli_mutated_{i}"
        reads.append((rid, _mutate(ecoli[start:start + READ_LEN], 0.08, rng)))
        origin[rid] = "Ecoli_K12_MG1655"
    # chimeras: half E. coli, half H. pylori (absent); the best hit covers about half the read
    pylori = _genome("Hpylori_ELS37", 150_000)
    for i in range(10):
        a, b = rng.randrange(len(ecoli) - READ_LEN), rng.randrange(len(pylori) - READ_LEN)
        half = READ_LEN // 2
        reads.append((f"chimera_{i}", ecoli[a:a + half] + pylori[b:b + READ_LEN - half]))
    # pair units (mate 1 + NNN + mate 2) whose mate 2 has no hit, as with a long insert
    for i in range(10):
        a, b = rng.randrange(len(ecoli) - READ_LEN), rng.randrange(len(pylori) - READ_LEN)
        reads.append((f"pair_{i}", ecoli[a:a + READ_LEN] + PAIR_SPACER + pylori[b:b + READ_LEN]))
    rng.shuffle(reads)
    # reads BERTax cannot see at all: only N, and shorter than a 3-mer
    reads += [("all_N", "N" * READ_LEN), ("too_short", "AC")]
    return reads, origin, refs


@pytest.fixture(scope="session")
def mmseqs_run(tmp_path_factory: pytest.TempPathFactory) -> MmseqsRun:
    if shutil.which("mmseqs") is None:
        pytest.skip("mmseqs not installed")
    work = tmp_path_factory.mktemp("mmseqs")
    reads, origin, refs = _reads(random.Random(7))
    units = work / "units.fa"
    units.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in reads))
    ref_fa = work / "ref.fa"
    mapping = work / "seq2taxid.tsv"
    ref_fa.write_text("".join(f">{g}\n{seq}\n" for g, seq in refs.items()))
    mapping.write_text("".join(f"{g}\t{REFERENCE[g]}\n" for g in refs))

    tax = full_taxonomy()
    taxdump = work / "taxdump"
    tax.write_dump(tax.closure([*REFERENCE.values(), *ABSENT.values(), *EXTRA_TAXA]), taxdump)

    db, qdb, res, tmp = work / "ref", work / "qdb", work / "res", work / "tmp"
    steps = [
        ["createdb", ref_fa, db, "--dbtype", "2"],
        ["createtaxdb", db, tmp, "--ncbi-tax-dump", taxdump, "--tax-mapping-file", mapping,
         "--tax-db-mode", "0"],
        ["createdb", units, qdb, "--dbtype", "2"],
        # -k 11: the default nucleotide k=15 allocates a 4^15 k-mer table (~45 s, GBs of RAM)
        # even for this 450 kb reference; k does not change the output layout under test
        ["taxonomy", qdb, db, res, tmp, "--search-type", "3", "--tax-lineage", "1",
         "--tax-output-mode", "2", "-k", "11"],
        ["createtsv", qdb, res, work / "lca.tsv"],
        ["convertalis", qdb, db, work / "res_aln", work / "aln.tsv", "--format-output",
         "query,target,fident,alnlen,evalue,bits,taxid"],
    ]
    for step in steps:
        cmd = ["mmseqs", *map(str, step), "-v", "1"]
        if step[0] in ("createtaxdb", "taxonomy", "convertalis", "createtsv"):
            cmd += ["--threads", "1"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return MmseqsRun(units, work / "lca.tsv", work / "aln.tsv", taxdump, db, origin)


@pytest.fixture(scope="module")
def tax(mmseqs_run: MmseqsRun) -> Taxonomy:
    return Taxonomy.load(mmseqs_run.taxdump)


def _table(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def _route(run: MmseqsRun, tmp_path: Path, **kwargs: object) -> tuple[list[dict], list[str]]:
    claims, routed = tmp_path / "claims.tsv", tmp_path / "routed.fa"
    options: dict = {"units": run.units, "lca": run.lca, "aln": run.aln,
                     "taxdump": run.taxdump, "mode": "unclassified", "route_rank": "genus",
                     "min_identity": {}, **kwargs}
    route(claims_out=claims, routed_out=routed, **options)
    assert claims.read_text().splitlines()[0].split("\t") == list(CLAIMS_HEADER)
    return _table(claims), [r.id for r in read_records(routed)]


def _expected_names(genome_id: str) -> dict[str, str]:
    lines = (SHARED / "genomes.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        if row["genome_id"] == genome_id:
            return {rank: row[rank] for rank in RANKS}
    raise KeyError(genome_id)


# --- what real MMseqs2 writes --------------------------------------------------------------------


def test_mmseqs_output_layout(mmseqs_run: MmseqsRun) -> None:
    lca = [line.split("\t") for line in mmseqs_run.lca.read_text().splitlines()]
    assert {len(row) for row in lca} == {5}  # query, taxid, rank, name, lineage
    unclassified = [row for row in lca if row[1] == "0"]
    assert unclassified and all(row[2:4] == ["no rank", "unclassified"] for row in unclassified)
    aln = [line.split("\t") for line in mmseqs_run.aln.read_text().splitlines()]
    assert aln and all(len(row) == 7 and 0 <= float(row[2]) <= 1 for row in aln)


# --- route ---------------------------------------------------------------------------------------


def test_route_claims_every_read_in_order(mmseqs_run: MmseqsRun, tmp_path: Path,
                                          tax: Taxonomy) -> None:
    claims, routed = _route(mmseqs_run, tmp_path)
    prepared = [r.id for r in read_records(mmseqs_run.units)]
    assert [row["read_id"] for row in claims] == prepared
    by_id = {row["read_id"]: row for row in claims}
    missed = 0
    for rid, genome in mmseqs_run.origin.items():
        row = by_id[rid]
        if genome in ABSENT:
            assert row["lca_taxid"] == "0" and rid in routed
            continue
        if row["lca_taxid"] == "0":
            # MMseqs2 masks low-complexity reads (an S. aureus repeat here): no hit, routed
            assert rid in routed and row["superkingdom_taxid"] == "0"
            missed += 1
            continue
        expected = _expected_names(genome)
        for rank in RANKS:
            taxid = int(row[f"{rank}_taxid"])
            if expected[rank] == "NA" or (genome == "Lambda_phage" and rank == "phylum"):
                assert taxid == 0  # viruses have no phylum in the 2013 dump
            else:
                assert tax.name(taxid) == expected[rank], (rid, rank)
        assert rid not in routed
    exact = [float(by_id[r]["identity"]) for r, g in mmseqs_run.origin.items()
             if g in REFERENCE and not r.startswith("Ecoli_mutated")]
    # a read can land on another copy of a repeat, so not every exact read scores 1
    assert sum(x == 1.0 for x in exact) >= 0.9 * len(exact)
    assert missed <= 3
    unclassified = {row["read_id"] for row in claims if row["lca_taxid"] == "0"}
    assert set(routed) == unclassified
    assert {r for r, g in mmseqs_run.origin.items() if g in ABSENT} | {"all_N", "too_short"} <= (
        unclassified)


def test_route_identity_cuts_ranks_below(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    claims, routed = _route(mmseqs_run, tmp_path, mode="below_rank",
                            min_identity={"genus": 0.97})
    mutated = [row for row in claims if row["read_id"].startswith("Ecoli_mutated")]
    far = [row for row in mutated if float(row["identity"]) < 0.97]
    assert len(far) >= 10  # 8 % substitutions
    for row in far:
        assert row["genus_taxid"] == "0" and row["phylum_taxid"] == "1224"
        assert row["read_id"] in routed  # below_rank: the claims stop above genus
    exact = [row for row in claims if row["read_id"].startswith("Ecoli_K12")]
    assert all(row["genus_taxid"] == "561" and row["read_id"] not in routed for row in exact)

    # unclassified mode leaves a read with a phylum claim to MMseqs2
    _, routed_unclassified = _route(mmseqs_run, tmp_path, min_identity={"genus": 0.97})
    assert not {row["read_id"] for row in far} & set(routed_unclassified)

    # a superkingdom minimum clears every rank below it as well
    claims, routed = _route(mmseqs_run, tmp_path, min_identity={"superkingdom": 0.97})
    for row in claims:
        if row["read_id"] in {r["read_id"] for r in far}:
            assert [row[f"{r}_taxid"] for r in RANKS] == ["0", "0", "0"]
            assert row["read_id"] in routed


def test_route_min_aln_fraction_clears_partial_hits(mmseqs_run: MmseqsRun,
                                                    tmp_path: Path) -> None:
    best: dict[str, tuple[float, int]] = {}
    for line in mmseqs_run.aln.read_text().splitlines():
        query, _, _, alnlen, _, bits, _ = line.split("\t")
        if query not in best or float(bits) > best[query][0]:
            best[query] = (float(bits), int(alnlen))
    partial = {q for q, (_, n) in best.items() if n < 0.8 * READ_LEN}
    assert {f"chimera_{i}" for i in range(10)} & partial  # the chimeras' hits are partial
    full = set(best) - partial

    claims, routed = _route(mmseqs_run, tmp_path)
    claimed = {r["read_id"] for r in claims if r["superkingdom_taxid"] != "0"}
    assert partial & claimed  # without a minimum MMseqs2 claims them ...
    claims, routed = _route(mmseqs_run, tmp_path, min_aln_fraction=0.8)
    by_id = {r["read_id"]: r for r in claims}
    for query in partial:  # ... with one, nothing: they go to BERTax
        assert [by_id[query][f"{r}_taxid"] for r in RANKS] == ["0", "0", "0"]
        assert query in routed
    assert full and all(by_id[q]["superkingdom_taxid"] != "0" for q in full)
    assert not full & set(routed)
    # a pair counts the fraction of its longer mate: a hit covering mate 1 keeps the claim
    pairs = [f"pair_{i}" for i in range(10)]
    assert all(q in best and best[q][1] > 0.6 * READ_LEN for q in pairs)
    assert all(best[q][1] < 0.6 * (2 * READ_LEN + len(PAIR_SPACER)) for q in pairs)
    claims, routed = _route(mmseqs_run, tmp_path, min_aln_fraction=0.6)
    by_id = {r["read_id"]: r for r in claims}
    assert all(by_id[q]["superkingdom_taxid"] == "2" and q not in routed for q in pairs)
    with pytest.raises(HytaxError, match=r"--min-aln-fraction 1\.5"):
        _route(mmseqs_run, tmp_path, min_aln_fraction=1.5)


def test_route_without_aln(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    claims, routed = _route(mmseqs_run, tmp_path, aln=None)
    assert all(row["identity"] == "0" for row in claims)
    assert "Ecoli_K12_MG1655_0" not in routed
    with pytest.raises(HytaxError, match="--aln"):
        _route(mmseqs_run, tmp_path, aln=None, min_identity={"genus": 0.9})


def test_route_bad_inputs_name_the_file(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    lines = mmseqs_run.lca.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad_lca.tsv"
    bad.write_text("".join(lines[:5]) + "read_x\t562\n" + "".join(lines[5:]))
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: line 6"):
        _route(mmseqs_run, tmp_path, lca=bad)
    bad.write_text("".join(lines) + "stranger\t562\tspecies\tEscherichia coli\t\n")
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: line \d+: read 'stranger'"):
        _route(mmseqs_run, tmp_path, lca=bad)
    bad.write_text("".join(lines) + lines[0])
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: line \d+: .*twice"):
        _route(mmseqs_run, tmp_path, lca=bad)

    aln = mmseqs_run.aln.read_text().splitlines(keepends=True)
    bad_aln = tmp_path / "bad_aln.tsv"
    fields = aln[2].split("\t")
    fields[2] = "100.0"  # a percent (pident) where the 0-1 fident belongs
    bad_aln.write_text("".join(aln[:2]) + "\t".join(fields))
    with pytest.raises(HytaxError, match=r"bad_aln\.tsv: line 3: fident"):
        _route(mmseqs_run, tmp_path, aln=bad_aln)

    dup = tmp_path / "dup.fa"
    dup.write_text(mmseqs_run.units.read_text() + ">all_N\nACGT\n")
    with pytest.raises(HytaxError, match=r"dup\.fa: read id 'all_N' appears twice"):
        _route(mmseqs_run, tmp_path, units=dup)
    with pytest.raises(HytaxError, match="rank 'species'"):
        _route(mmseqs_run, tmp_path, route_rank="species")


# --- merge ---------------------------------------------------------------------------------------


def _bertax(path: Path, rows: dict[str, list[tuple[int, float]]]) -> Path:
    """A predictions TSV; rows: read id -> [(taxid, prob) per rank]."""
    tax = full_taxonomy()
    lines = ["\t".join(BERTAX_COLUMNS)]
    for rid, answers in rows.items():
        cells = [rid, str(READ_LEN)]
        for taxid, prob in answers:
            cells += [tax.name(taxid) if taxid else "unknown", str(taxid), str(prob)]
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def routed_claims(mmseqs_run: MmseqsRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    claims = tmp_path_factory.mktemp("claims") / "claims.tsv"
    route(units=mmseqs_run.units, lca=mmseqs_run.lca, aln=mmseqs_run.aln,
          taxdump=mmseqs_run.taxdump, mode="below_rank", route_rank="genus",
          min_identity={"genus": 0.97}, claims_out=claims, routed_out=claims.with_suffix(".fa"))
    return claims


def _merge(run: MmseqsRun, claims: Path, bertax: Path, out: Path,
           min_confidence: float = 0.5) -> dict[str, dict[str, str]]:
    merge(units=run.units, claims=claims, bertax=bertax, taxdump=run.taxdump,
          min_confidence=min_confidence, output=out)
    assert out.read_text().splitlines()[0].split("\t") == list(MERGED_HEADER)
    rows = _table(out)
    assert [r["read_id"] for r in rows] == [r.id for r in read_records(run.units)]
    return {r["read_id"]: r for r in rows}


def test_merge_without_predictions_keeps_mmseqs(mmseqs_run: MmseqsRun, routed_claims: Path,
                                               tmp_path: Path) -> None:
    merged = _merge(mmseqs_run, routed_claims, _bertax(tmp_path / "b.tsv", {}),
                    tmp_path / "m.tsv")
    claims = {r["read_id"]: r for r in _table(routed_claims)}
    for rid, row in merged.items():
        for rank in RANKS:
            claimed = claims[rid][f"{rank}_taxid"]
            assert row[f"{rank}_taxid"] == claimed
            assert row[f"{rank}_source"] == ("mmseqs2" if claimed != "0" else "none")
    ecoli = merged["Ecoli_K12_MG1655_0"]
    assert (ecoli["rank"], ecoli["name"], ecoli["genus_name"]) == ("genus", "Escherichia",
                                                                   "Escherichia")
    assert ecoli["phylum_name"] == "Proteobacteria" and ecoli["genus_confidence"] == "1"
    assert merged["all_N"]["rank"] == "unclassified" and merged["all_N"]["taxid"] == "0"
    assert merged["all_N"]["length"] == str(READ_LEN)


def test_merge_bertax_fills_only_open_confident_consistent(
    mmseqs_run: MmseqsRun, routed_claims: Path, tmp_path: Path
) -> None:
    bacteria, proteo, firmicutes, helico, escherichia, bacillus = 2, 1224, 1239, 209, 561, 1386
    eukaryota, streptophyta, arabidopsis = 2759, 35493, 3701
    hp = [r for r, g in mmseqs_run.origin.items() if g in ABSENT]
    far = [r["read_id"] for r in _table(routed_claims)
           if r["read_id"].startswith("Ecoli_mutated") and r["genus_taxid"] == "0"
           and r["phylum_taxid"] == "1224"]
    answers = {
        hp[0]: [(bacteria, 0.99), (proteo, 0.9), (helico, 0.8)],  # all consistent
        hp[1]: [(bacteria, 0.99), (firmicutes, 0.9), (helico, 0.9)],  # genus not in Firmicutes
        hp[2]: [(bacteria, 0.99), (proteo, 0.3), (helico, 0.7)],  # phylum too unsure
        hp[3]: [(0, 1.0), (0, 1.0), (0, 1.0)],  # unknown never fills
        hp[4]: [(eukaryota, 0.4), (streptophyta, 0.9), (arabidopsis, 0.9)],
        far[0]: [(eukaryota, 1.0), (streptophyta, 1.0), (escherichia, 0.9)],  # MMseqs2 kept
        far[1]: [(bacteria, 1.0), (proteo, 1.0), (bacillus, 0.99)],  # Bacillus: Firmicutes
        "Ecoli_K12_MG1655_0": [(bacteria, 1.0), (firmicutes, 1.0), (bacillus, 1.0)],
        "all_N": [(bacteria, 1.0), (proteo, 1.0), (escherichia, 1.0)],  # no 3-mer: none
    }
    merged = _merge(mmseqs_run, routed_claims, _bertax(tmp_path / "b.tsv", answers),
                    tmp_path / "m.tsv", min_confidence=0.5)

    def got(rid: str) -> list[tuple[str, str]]:
        return [(merged[rid][f"{r}_taxid"], merged[rid][f"{r}_source"]) for r in RANKS]

    assert got(hp[0]) == [("2", "bertax"), ("1224", "bertax"), ("209", "bertax")]
    assert merged[hp[0]]["genus_confidence"] == "0.8" and merged[hp[0]]["name"] == "Helicobacter"
    assert got(hp[1]) == [("2", "bertax"), ("1239", "bertax"), ("0", "none")]
    assert merged[hp[1]]["rank"] == "phylum" and merged[hp[1]]["name"] == "Firmicutes"
    assert got(hp[2]) == [("2", "bertax"), ("0", "none"), ("209", "bertax")]
    assert got(hp[3]) == [("0", "none")] * 3 and merged[hp[3]]["rank"] == "unclassified"
    # superkingdom below the threshold; Streptophyta is then checked against nothing above it
    assert got(hp[4]) == [("0", "none"), ("35493", "bertax"), ("3701", "bertax")]
    assert got(far[0]) == [("2", "mmseqs2"), ("1224", "mmseqs2"), ("561", "bertax")]
    assert got(far[1]) == [("2", "mmseqs2"), ("1224", "mmseqs2"), ("0", "none")]
    assert got("Ecoli_K12_MG1655_0") == [("2", "mmseqs2"), ("1224", "mmseqs2"),
                                         ("561", "mmseqs2")]
    assert got("all_N") == [("0", "none")] * 3
    # the threshold is inclusive and applies per rank
    strict = _merge(mmseqs_run, routed_claims, _bertax(tmp_path / "b.tsv", answers),
                    tmp_path / "m2.tsv", min_confidence=0.9)
    assert [strict[hp[0]][f"{r}_source"] for r in RANKS] == ["bertax", "bertax", "none"]


def test_merge_bad_inputs(mmseqs_run: MmseqsRun, routed_claims: Path, tmp_path: Path) -> None:
    stranger = _bertax(tmp_path / "stranger.tsv", {"Hpylori_ELS37_0": [(2, 1.0)] * 3,
                                                   "not_a_read": [(2, 1.0)] * 3})
    with pytest.raises(HytaxError, match=r"stranger\.tsv: line 3: read 'not_a_read'"):
        _merge(mmseqs_run, routed_claims, stranger, tmp_path / "m.tsv")
    unknown = _bertax(tmp_path / "unknown.tsv", {"Hpylori_ELS37_0": [(2, 1.0)] * 3})
    unknown.write_text(unknown.read_text().replace("\t2\t", "\t999999999\t", 1))
    with pytest.raises(HytaxError, match=r"unknown\.tsv: line 2: taxid 999999999"):
        _merge(mmseqs_run, routed_claims, unknown, tmp_path / "m.tsv")
    wrong = tmp_path / "bertax_format.tsv"
    wrong.write_text("id\tsuperkingdom\t%\tphylum\t%\tgenus\t%\n")
    with pytest.raises(HytaxError, match=r"bertax_format\.tsv: line 1: .*superkingdom_taxid"):
        _merge(mmseqs_run, routed_claims, wrong, tmp_path / "m.tsv")
    dup = tmp_path / "dup.fa"
    dup.write_text(mmseqs_run.units.read_text() + ">all_N\nNNN\n")
    empty = _bertax(tmp_path / "empty.tsv", {})
    with pytest.raises(HytaxError, match=r"dup\.fa: read id 'all_N' appears twice"):
        merge(units=dup, claims=routed_claims, bertax=empty, taxdump=mmseqs_run.taxdump,
              output=tmp_path / "m.tsv")
    short_claims = tmp_path / "short_claims.tsv"
    short_claims.write_text("".join(routed_claims.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(HytaxError, match=r"short_claims\.tsv: has no row for read"):
        _merge(mmseqs_run, short_claims, empty, tmp_path / "m.tsv")
