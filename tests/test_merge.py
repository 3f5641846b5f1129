"""The classifier seam against real MMseqs2 runs on reads cut from real genomes: MMseqs2 tables
-> claims (hytax.mmseqs2), what a claim may keep and which tier answers (hytax.routing), and the
merge rule (hytax.merge). Two tiers: a nucleotide database and a protein one made of the genes
pyrodigal finds in the same genomes (hytax.genes)."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_DATA as SHARED
from conftest import full_taxonomy

from hytax import mmseqs2
from hytax.errors import HytaxError
from hytax.genes import write_proteins
from hytax.merge import merge
from hytax.routing import ClaimRule, route, write_tier_claims
from hytax.seqio import PAIR_SPACER, read_records
from hytax.tables import CLAIM_COLUMNS, MERGED_COLUMNS, PREDICTION_COLUMNS
from hytax.taxonomy import RANKS, Taxonomy

READ_LEN = 150
FRAGMENT_LEN = 1500
# in the reference (first 400 kb of each) / not in it (another genus)
REFERENCE = {"Ecoli_K12_MG1655": 511145, "Saureus_COL": 93062, "Lambda_phage": 10710}
ABSENT = {"Hpylori_ELS37": 1055527, "Shewanella_baltica_OS185_500kb": 402882}
EXTRA_TAXA = [209, 1239, 2759, 35493, 3701, 1386]  # for BERTax answers: Helicobacter, ...
# ids MMseqs2 would shorten (`sp|P12345|r3` -> `P12345`, so these two would collide)
PACBIO = Path(__file__).parent / "data" / "pacbio" / "ecoli_k12_pacbio_rs2.fasta.gz"
ODD_IDS = ["sp|P12345|r3", "sp|P12345|r4", "gi|49175990|ref|NC_000913.2|"]


@dataclass(frozen=True)
class Tier:
    name: str
    db_type: str
    lca: Path
    aln: Path


@dataclass(frozen=True)
class MmseqsRun:
    units: Path  # prepared reads
    taxdump: Path  # a real 2013 subset
    nucleotide: Tier
    protein: Tier
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
    for genome in (*REFERENCE, "Hpylori_ELS37"):
        seq = _genome(genome, 400_000)
        if genome in REFERENCE:
            # the whole E. coli genome: its proteome is what the protein tier searches
            refs[genome] = _genome(genome, 10**7) if genome == "Ecoli_K12_MG1655" else seq
        n = 10 if genome == "Ecoli_K12_MG1655" else 20
        for i in range(n):
            start = rng.randrange(len(seq) - READ_LEN)
            reads.append((f"{genome}_{i}", seq[start:start + READ_LEN]))
            origin[f"{genome}_{i}"] = genome
    ecoli = refs["Ecoli_K12_MG1655"]
    # E. coli reads with 8 % substitutions: a hit, but a far one (identity about 0.92)
    for i in range(20):
        start = rng.randrange(len(ecoli) - READ_LEN)
        rid = f"Ecoli_mutated_{i}"
        reads.append((rid, _mutate(ecoli[start:start + READ_LEN], 0.08, rng)))
        origin[rid] = "Ecoli_K12_MG1655"
    # chimeras: half E. coli, half H. pylori (absent); the best hit covers about half the read
    pylori = _genome("Hpylori_ELS37", 400_000)
    for i in range(10):
        a, b = rng.randrange(len(ecoli) - READ_LEN), rng.randrange(len(pylori) - READ_LEN)
        half = READ_LEN // 2
        reads.append((f"chimera_{i}", ecoli[a:a + half] + pylori[b:b + READ_LEN - half]))
    # pair units (mate 1 + NNN + mate 2) whose mate 2 has no hit, as with a long insert
    for i in range(10):
        a, b = rng.randrange(len(ecoli) - READ_LEN), rng.randrange(len(pylori) - READ_LEN)
        reads.append((f"pair_{i}", ecoli[a:a + READ_LEN] + PAIR_SPACER + pylori[b:b + READ_LEN]))
    # 1500-nt fragments of a genus of another order: its proteins are about half identical to
    # E. coli's, its DNA too far for a nucleotide search, so only the protein tier places them
    shewanella = _genome("Shewanella_baltica_OS185_500kb", 400_000)
    for i in range(40):
        start = rng.randrange(len(shewanella) - FRAGMENT_LEN)
        reads.append((f"Shewanella_long_{i}", shewanella[start:start + FRAGMENT_LEN]))
        origin[f"Shewanella_long_{i}"] = "Shewanella_baltica_OS185_500kb"
    for rid in ODD_IDS:
        start = rng.randrange(len(ecoli) - READ_LEN)
        reads.append((rid, ecoli[start:start + READ_LEN]))
        origin[rid] = "Ecoli_K12_MG1655"
    # a contig far longer than MMseqs2 aligns in one piece (it stops at about 10 kb), and real
    # PacBio reads of E. coli K-12 (17-20 kb, raw: about 85-90 % identity)
    reads.append(("ecoli_contig", ecoli[100_000:250_000]))
    origin["ecoli_contig"] = "Ecoli_K12_MG1655"
    for read in read_records(PACBIO):
        reads.append((read.id, read.seq))
        origin[read.id] = "Ecoli_K12_MG1655"
    rng.shuffle(reads)
    # reads BERTax cannot see at all: only N, and shorter than a 3-mer
    reads += [("all_N", "N" * READ_LEN), ("too_short", "AC")]
    return reads, origin, refs


def run_mmseqs_tier(units: Path, db: Path, db_type: str, work: Path) -> tuple[Path, Path]:
    """What modules/local/mmseqs_taxonomy does: reads renamed to their numbers, taxonomy,
    both tables sorted by read number."""
    work.mkdir(parents=True, exist_ok=True)
    numbered = work / "query.fa"
    with numbered.open("w") as out:
        for n, read in enumerate(read_records(units), start=1):
            out.write(f">{n}\n{read.seq}\n")
    qdb, res, tmp = work / "qdb", work / "res", work / "tmp"
    nucleotide = db_type == "nucleotide"
    search = ["--search-type", "3", "-k", "11"] if nucleotide else ["--orf-filter", "0"]
    steps = [
        ["createdb", numbered, qdb, "--dbtype", "2"],
        ["taxonomy", qdb, db, res, tmp, "--tax-lineage", "1", "--tax-output-mode", "2",
         "--threads", "1", *search],
        ["createtsv", qdb, res, work / "lca.raw", "--threads", "1"],
        ["convertalis", qdb, db, work / "res_aln", work / "aln.raw", "--format-output",
         mmseqs2.ALN_COLUMNS, "--threads", "1", *(search[:2] if nucleotide else [])],
    ]
    for step in steps:
        subprocess.run(["mmseqs", *map(str, step), "-v", "1"], check=True, capture_output=True,
                       timeout=300)
    for name in ("lca", "aln"):
        subprocess.run(f"sort -t $'\\t' -k1,1n -s {work / name}.raw > {work / name}.tsv",
                       shell=True, check=True, executable="/bin/bash")
    return work / "lca.tsv", work / "aln.tsv"


def _make_db(fasta: Path, mapping: Path, taxdump: Path, db: Path, dbtype: str) -> None:
    tmp = db.parent / f"tmp_{db.name}"
    for step in (["createdb", fasta, db, "--dbtype", dbtype],
                 ["createtaxdb", db, tmp, "--ncbi-tax-dump", taxdump, "--tax-mapping-file",
                  mapping, "--tax-db-mode", "0", "--threads", "1"]):
        subprocess.run(["mmseqs", *map(str, step), "-v", "1"], check=True, capture_output=True,
                       timeout=120)


@pytest.fixture(scope="session")
def mmseqs_run(tmp_path_factory: pytest.TempPathFactory) -> MmseqsRun:
    if shutil.which("mmseqs") is None:
        pytest.fail("mmseqs not installed (make tools)")
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

    _make_db(ref_fa, mapping, taxdump, work / "nucl", "2")
    write_proteins(fasta=ref_fa, mapping=mapping, proteins_out=work / "genes.faa",
                   mapping_out=work / "genes.tsv")
    _make_db(work / "genes.faa", work / "genes.tsv", taxdump, work / "prot", "1")
    tiers = {}
    for name, db_type, db in (("nt", "nucleotide", work / "nucl"),
                              ("aa", "protein", work / "prot")):
        lca, aln = run_mmseqs_tier(units, db, db_type, work / f"run_{name}")
        tiers[name] = Tier(name, db_type, lca, aln)
    return MmseqsRun(units, taxdump, tiers["nt"], tiers["aa"], origin)


@pytest.fixture(scope="module")
def tax(mmseqs_run: MmseqsRun) -> Taxonomy:
    return Taxonomy.load(mmseqs_run.taxdump)


def _table(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def _claims(run: MmseqsRun, tier: Tier, tmp_path: Path, **rule: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / f"{tier.name}.claims.tsv"
    claims = mmseqs2.claims(units=run.units, raw=[tier.lca, tier.aln],
                            taxonomy=Taxonomy.load(run.taxdump), db_type=tier.db_type,
                            source=f"mmseqs2:{tier.name}")
    write_tier_claims(claims, ClaimRule(**rule), out)  # type: ignore[arg-type]
    assert out.read_text().splitlines()[0].split("\t") == list(CLAIM_COLUMNS)
    return out


def _route(run: MmseqsRun, tmp_path: Path, tiers: list[Path] | None = None,
           **kwargs: object) -> tuple[list[dict], list[str]]:
    kept, routed = tmp_path / "kept.tsv", tmp_path / "routed.fa"
    if tiers is None:
        tiers = [_claims(run, run.nucleotide, tmp_path,
                         **{k: kwargs.pop(k) for k in ("min_identity", "min_aln_fraction")
                            if k in kwargs})]
    options: dict = {"units": run.units, "mode": "unclassified", "route_rank": "genus", **kwargs}
    route(tiers=tiers, kept_out=kept, routed_out=routed, **options)
    return _table(kept), [r.id for r in read_records(routed)]


def _expected_names(genome_id: str) -> dict[str, str]:
    lines = (SHARED / "genomes.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        if row["genome_id"] == genome_id:
            return {rank: row[rank] for rank in RANKS}
    raise KeyError(genome_id)


# --- MMseqs2 tables -> claims ---------------------------------------------------------------------


def test_mmseqs_output_layout(mmseqs_run: MmseqsRun) -> None:
    for tier in (mmseqs_run.nucleotide, mmseqs_run.protein):
        lca = [line.split("\t") for line in tier.lca.read_text().splitlines()]
        # query, taxid, rank, name, [4 support columns: translated search], lineage;
        # numbered queries, sorted
        assert {len(row) for row in lca} == {5 if tier.db_type == "nucleotide" else 9}
        assert [int(row[0]) for row in lca] == sorted(int(row[0]) for row in lca)
        unclassified = [row for row in lca if row[1] == "0"]
        assert unclassified and all(row[2:4] == ["no rank", "unclassified"]
                                    for row in unclassified)
        aln = [line.split("\t") for line in tier.aln.read_text().splitlines()]
        assert aln and all(len(row) == 10 and 0 <= float(row[2]) <= 1 for row in aln)
    # translated search: coordinates are amino acids of a reading frame, never past a
    # 150-nt read's 50 codons
    numbers = {r.id: n for n, r in enumerate(read_records(mmseqs_run.units), start=1)}
    short = {str(numbers[r]) for r in numbers if r.startswith("Ecoli_K12")}
    rows = [line.split("\t") for line in mmseqs_run.protein.aln.read_text().splitlines()]
    assert all(int(row[6]) <= 50 for row in rows if row[0] in short)


def test_claims_every_read_in_order(mmseqs_run: MmseqsRun, tmp_path: Path,
                                    tax: Taxonomy) -> None:
    claims, routed = _route(mmseqs_run, tmp_path)
    prepared = [r.id for r in read_records(mmseqs_run.units)]
    assert [row["read_id"] for row in claims] == prepared
    by_id = {row["read_id"]: row for row in claims}
    missed = stray = 0
    for rid, genome in mmseqs_run.origin.items():
        row = by_id[rid]
        if genome in ABSENT:
            # a read from a conserved gene (an rRNA) can hit a genome of another genus; only
            # the superkingdom is then sure to be right
            stray += row["lca_taxid"] != "0" and genome == "Hpylori_ELS37"
            assert row["superkingdom_taxid"] in ("0", "2")
            continue
        if row["lca_taxid"] == "0":
            # MMseqs2 masks low-complexity reads (an S. aureus repeat here): no hit, routed
            assert rid in routed and row["superkingdom_taxid"] == "0"
            missed += 1
            continue
        assert row["source"] == "mmseqs2:nt"
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
    assert stray <= 0.2 * sum(g == "Hpylori_ELS37" for g in mmseqs_run.origin.values())
    unclassified = {row["read_id"] for row in claims if row["superkingdom_taxid"] == "0"}
    assert set(routed) == unclassified
    assert {"all_N", "too_short"} <= unclassified
    assert all(row["source"] == "none" for row in claims if row["read_id"] in unclassified)


def test_ids_mmseqs2_would_shorten_round_trip(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    claims, _ = _route(mmseqs_run, tmp_path)
    by_id = {row["read_id"]: row for row in claims}
    for rid in ODD_IDS:
        assert by_id[rid]["genus_taxid"] == "561", rid  # each its own E. coli read


def test_long_contig_is_claimed_over_its_whole_length(mmseqs_run: MmseqsRun,
                                                      tmp_path: Path) -> None:
    claims, routed = _route(mmseqs_run, tmp_path, min_aln_fraction=0.5)
    contig = next(row for row in claims if row["read_id"] == "ecoli_contig")
    # MMseqs2 aligns it in 10-kb pieces; their union covers the contig
    assert float(contig["aln_fraction"]) > 0.95
    assert contig["genus_taxid"] == "561" and "ecoli_contig" not in routed
    # raw PacBio reads align in a few 10-kb pieces, not end to end: their share is of 10 kb
    pacbio = [row for row in claims if row["read_id"].startswith("m140213_")]
    assert len(pacbio) == 4
    claimed = [row for row in pacbio if row["source"] == "mmseqs2:nt"]
    assert len(claimed) >= 3, pacbio
    assert all(row["genus_taxid"] == "561" and row["read_id"] not in routed for row in claimed)


# --- what a claim may keep ------------------------------------------------------------------------


def test_identity_cuts_ranks_below(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
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


def test_min_aln_fraction_clears_partial_hits(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    raw = {r["read_id"]: r for r in _table(_claims(mmseqs_run, mmseqs_run.nucleotide,
                                                   tmp_path))}
    share = {rid: float(row["aln_fraction"]) for rid, row in raw.items()
             if row["superkingdom_taxid"] != "0"}
    partial = {rid for rid, x in share.items() if x < 0.8}
    assert {f"chimera_{i}" for i in range(10)} & partial  # the chimeras' hits are partial
    full = set(share) - partial
    claims, routed = _route(mmseqs_run, tmp_path, min_aln_fraction=0.8)
    by_id = {r["read_id"]: r for r in claims}
    for rid in partial:  # with a minimum, nothing: they go to BERTax
        assert [by_id[rid][f"{r}_taxid"] for r in RANKS] == ["0", "0", "0"]
        assert rid in routed
    assert full and all(by_id[q]["superkingdom_taxid"] != "0" for q in full)
    assert not full & set(routed)
    # a pair counts the share of its longer mate: a hit covering mate 1 keeps the claim
    pairs = [f"pair_{i}" for i in range(10)]
    assert all(share.get(q, 0) > 0.6 for q in pairs)
    claims, routed = _route(mmseqs_run, tmp_path, min_aln_fraction=0.6)
    by_id = {r["read_id"]: r for r in claims}
    assert all(by_id[q]["superkingdom_taxid"] == "2" and q not in routed for q in pairs)
    with pytest.raises(HytaxError, match=r"--min-aln-fraction 1\.5"):
        _route(mmseqs_run, tmp_path, min_aln_fraction=1.5)


def test_aligned_share_units() -> None:
    seq = "A" * 1500
    forward = mmseqs2.Hit(1.0, 1, 600, 1500, 0.0, 100.0)
    # a 30-kb read: shares are of the 10 kb MMseqs2 aligns in one piece
    pieces = [mmseqs2.Hit(0.9, 1, 4000, 30_000, 0.0, 1.0), mmseqs2.Hit(0.9, 20_001, 23_000,
                                                                        30_000, 0.0, 1.0)]
    assert mmseqs2.aligned_share(pieces, "A" * 30_000, "nucleotide") == pytest.approx(0.7)
    reverse = mmseqs2.Hit(1.0, 900, 401, 1500, 0.0, 90.0)  # overlaps the first by 200 nt
    assert mmseqs2.aligned_share([forward, reverse], seq, "nucleotide") == pytest.approx(0.6)
    # translated search: 100 residues of one frame and 50 of another are 450 nt of the read
    frames = [mmseqs2.Hit(0.5, 0, 99, 120, 0.0, 80.0), mmseqs2.Hit(0.5, 10, 59, 60, 0.0, 40.0)]
    assert mmseqs2.aligned_share(frames, seq, "protein") == pytest.approx(0.3)
    assert mmseqs2.aligned_share([], seq, "protein") == 0.0


# --- tiers ----------------------------------------------------------------------------------------


def test_protein_tier_places_reads_the_nucleotide_tier_cannot(mmseqs_run: MmseqsRun,
                                                              tmp_path: Path) -> None:
    nt = _claims(mmseqs_run, mmseqs_run.nucleotide, tmp_path, min_aln_fraction=0.5)
    # amino-acid identity: a genus of another order shares about half its residues (more in
    # conserved proteins), one genus nearly all
    aa = _claims(mmseqs_run, mmseqs_run.protein, tmp_path, min_identity={"genus": 0.95})
    nt_rows = {r["read_id"]: r for r in _table(nt)}
    kept, routed = _route(mmseqs_run, tmp_path, tiers=[nt, aa])
    by_id = {r["read_id"]: r for r in kept}
    long_reads = [r for r in by_id if r.startswith("Shewanella_long_")]
    placed = [r for r in long_reads if by_id[r]["source"] == "mmseqs2:aa"]
    # far homologues: the protein tier places many of those the nucleotide tier leaves open,
    # in the right superkingdom, and nearly all in the right phylum (an LCA over E. coli and
    # S. aureus hits stops at Bacteria)
    open_after_nt = [r for r in long_reads if nt_rows[r]["superkingdom_taxid"] == "0"]
    assert len(placed) >= max(3, len(open_after_nt) // 4), (len(placed), len(open_after_nt))
    assert set(placed) <= set(open_after_nt)
    assert all(by_id[r]["superkingdom_taxid"] == "2" for r in placed)
    wrong_phylum = [r for r in placed if by_id[r]["phylum_taxid"] not in ("1224", "0")]
    assert len(wrong_phylum) <= 0.1 * len(placed), [by_id[r] for r in wrong_phylum]
    # conserved proteins are over 95 % identical across orders: the genus minimum cuts some
    # invented genera, not all (the benchmark chooses the protein tier's defaults)
    loose = {r["read_id"]: r for r in _table(_claims(mmseqs_run, mmseqs_run.protein,
                                                     tmp_path / "loose"))}
    wrong = sum(by_id[r]["genus_taxid"] != "0" for r in placed)
    assert sum(loose[r]["genus_taxid"] == "561" for r in placed) > wrong
    # a read the nucleotide tier closes keeps its answer whatever the protein tier says
    for rid, row in nt_rows.items():
        if row["superkingdom_taxid"] != "0":
            assert by_id[rid]["source"] == "mmseqs2:nt"
            assert [by_id[rid][f"{r}_taxid"] for r in RANKS] == [row[f"{r}_taxid"]
                                                                for r in RANKS]
    # only reads that both tiers leave open go to BERTax
    assert set(routed) == {r for r in by_id if by_id[r]["superkingdom_taxid"] == "0"}


def test_route_below_rank_takes_the_tier_that_closes_the_read(mmseqs_run: MmseqsRun,
                                                              tmp_path: Path) -> None:
    # tier 1 keeps only phylum and above for the mutated reads; the same database as tier 2
    # without a minimum closes them at genus
    strict = _claims(mmseqs_run, mmseqs_run.nucleotide, tmp_path / "a",
                     min_identity={"genus": 0.97})
    loose = _claims(mmseqs_run, mmseqs_run.nucleotide, tmp_path / "b")
    loose.write_text(loose.read_text().replace("mmseqs2:nt", "mmseqs2:loose"))
    kept, routed = _route(mmseqs_run, tmp_path, tiers=[strict, loose], mode="below_rank")
    by_id = {r["read_id"]: r for r in kept}
    far = [r for r in by_id if r.startswith("Ecoli_mutated")
           and float(by_id[r]["identity"]) < 0.97]
    assert far and all(by_id[r]["source"] == "mmseqs2:loose" for r in far)
    assert all(by_id[r]["genus_taxid"] == "561" and r not in routed for r in far)
    # with one tier only, they keep the partial answer and go to BERTax for the rest
    kept, routed = _route(mmseqs_run, tmp_path, tiers=[strict], mode="below_rank")
    by_id = {r["read_id"]: r for r in kept}
    assert all(by_id[r]["phylum_taxid"] == "1224" and r in routed for r in far)


def test_bad_inputs_name_the_file(mmseqs_run: MmseqsRun, tmp_path: Path) -> None:
    tier = mmseqs_run.nucleotide
    lines = tier.lca.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad_lca.tsv"
    bad.write_text("".join(lines[:5]) + "read_x\t562\tspecies\tE. coli\n" + "".join(lines[5:]))
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: line 6: query"):
        list(mmseqs2.claims(units=mmseqs_run.units, raw=[bad, tier.aln],
                            taxonomy=Taxonomy.load(mmseqs_run.taxdump), db_type="nucleotide",
                            source="x"))
    bad.write_text("".join(lines) + "100000\t562\tspecies\tEscherichia coli\t\n")
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: query 100000 but .* has only"):
        list(mmseqs2.claims(units=mmseqs_run.units, raw=[bad, tier.aln],
                            taxonomy=Taxonomy.load(mmseqs_run.taxdump), db_type="nucleotide",
                            source="x"))
    bad.write_text("".join(reversed(lines)))
    with pytest.raises(HytaxError, match=r"bad_lca\.tsv: line 2: .*sorted"):
        list(mmseqs2.claims(units=mmseqs_run.units, raw=[bad, tier.aln],
                            taxonomy=Taxonomy.load(mmseqs_run.taxdump), db_type="nucleotide",
                            source="x"))
    aln = tier.aln.read_text().splitlines(keepends=True)
    bad_aln = tmp_path / "bad_aln.tsv"
    fields = aln[2].split("\t")
    fields[2] = "100.0"  # a percent (pident) where the 0-1 fident belongs
    bad_aln.write_text("".join(aln[:2]) + "\t".join(fields))
    with pytest.raises(HytaxError, match=r"bad_aln\.tsv: line 3: fident"):
        list(mmseqs2.claims(units=mmseqs_run.units, raw=[tier.lca, bad_aln],
                            taxonomy=Taxonomy.load(mmseqs_run.taxdump), db_type="nucleotide",
                            source="x"))
    claims = _claims(mmseqs_run, tier, tmp_path)
    other = tmp_path / "other.fa"
    other.write_text(mmseqs_run.units.read_text().replace(">all_N", ">renamed"))
    with pytest.raises(HytaxError, match=r"nt\.claims\.tsv: line \d+: read 'all_N' where read"):
        _route(mmseqs_run, tmp_path, tiers=[claims], units=other)
    with pytest.raises(HytaxError, match="rank 'species'"):
        _route(mmseqs_run, tmp_path, tiers=[claims], route_rank="species")


# --- merge ---------------------------------------------------------------------------------------


def _bertax(path: Path, rows: dict[str, list[tuple[int, float]]], units: Path) -> Path:
    """A predictions TSV in the reads' order; rows: read id -> [(taxid, prob) per rank]."""
    tax = full_taxonomy()
    lines = ["\t".join(PREDICTION_COLUMNS)]
    order = {r.id: n for n, r in enumerate(read_records(units))}
    for rid, answers in sorted(rows.items(), key=lambda item: order.get(item[0], len(order))):
        cells = [rid, str(READ_LEN)]
        for taxid, prob in answers:
            cells += [tax.name(taxid) if taxid else "unknown", str(taxid), str(prob)]
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def routed_claims(mmseqs_run: MmseqsRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("claims")
    tier = _claims(mmseqs_run, mmseqs_run.nucleotide, work, min_identity={"genus": 0.97})
    claims = work / "kept.tsv"
    route(units=mmseqs_run.units, tiers=[tier], mode="below_rank", route_rank="genus",
          kept_out=claims, routed_out=work / "routed.fa")
    return claims


def _merge(run: MmseqsRun, claims: Path, bertax: Path, out: Path,
           min_confidence: float = 0.5) -> dict[str, dict[str, str]]:
    merge(units=run.units, claims=claims, bertax=bertax, taxonomy=Taxonomy.load(run.taxdump),
          min_confidence=min_confidence, output=out)
    assert out.read_text().splitlines()[0].split("\t") == list(MERGED_COLUMNS)
    rows = _table(out)
    assert [r["read_id"] for r in rows] == [r.id for r in read_records(run.units)]
    return {r["read_id"]: r for r in rows}


def test_merge_without_predictions_keeps_mmseqs(mmseqs_run: MmseqsRun, routed_claims: Path,
                                               tmp_path: Path) -> None:
    merged = _merge(mmseqs_run, routed_claims, _bertax(tmp_path / "b.tsv", {}, mmseqs_run.units),
                    tmp_path / "m.tsv")
    claims = {r["read_id"]: r for r in _table(routed_claims)}
    for rid, row in merged.items():
        for rank in RANKS:
            claimed = claims[rid][f"{rank}_taxid"]
            assert row[f"{rank}_taxid"] == claimed
            assert row[f"{rank}_source"] == ("mmseqs2:nt" if claimed != "0" else "none")
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
    unclaimed = {r["read_id"] for r in _table(routed_claims) if r["source"] == "none"}
    hp = [r for r, g in mmseqs_run.origin.items() if g == "Hpylori_ELS37" and r in unclaimed]
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
    bertax = _bertax(tmp_path / "b.tsv", answers, mmseqs_run.units)
    merged = _merge(mmseqs_run, routed_claims, bertax, tmp_path / "m.tsv", min_confidence=0.5)

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
    assert got(far[0]) == [("2", "mmseqs2:nt"), ("1224", "mmseqs2:nt"), ("561", "bertax")]
    assert got(far[1]) == [("2", "mmseqs2:nt"), ("1224", "mmseqs2:nt"), ("0", "none")]
    assert got("Ecoli_K12_MG1655_0") == [("2", "mmseqs2:nt"), ("1224", "mmseqs2:nt"),
                                         ("561", "mmseqs2:nt")]
    assert got("all_N") == [("0", "none")] * 3
    # the threshold is inclusive and applies per rank
    strict = _merge(mmseqs_run, routed_claims, bertax, tmp_path / "m2.tsv", min_confidence=0.9)
    assert [strict[hp[0]][f"{r}_source"] for r in RANKS] == ["bertax", "bertax", "none"]


def test_merge_bad_inputs(mmseqs_run: MmseqsRun, routed_claims: Path, tmp_path: Path) -> None:
    stranger = _bertax(tmp_path / "stranger.tsv", {"Hpylori_ELS37_0": [(2, 1.0)] * 3,
                                                   "not_a_read": [(2, 1.0)] * 3},
                       mmseqs_run.units)
    with pytest.raises(HytaxError, match=r"stranger\.tsv: line 3: read 'not_a_read'"):
        _merge(mmseqs_run, routed_claims, stranger, tmp_path / "m.tsv")
    unknown = _bertax(tmp_path / "unknown.tsv", {"Hpylori_ELS37_0": [(2, 1.0)] * 3},
                      mmseqs_run.units)
    unknown.write_text(unknown.read_text().replace("\t2\t", "\t999999999\t", 1))
    with pytest.raises(HytaxError, match=r"unknown\.tsv: line 2: taxid 999999999"):
        _merge(mmseqs_run, routed_claims, unknown, tmp_path / "m.tsv")
    wrong = tmp_path / "bertax_format.tsv"
    wrong.write_text("id\tsuperkingdom\t%\tphylum\t%\tgenus\t%\n")
    with pytest.raises(HytaxError, match=r"bertax_format\.tsv: line 1: .*superkingdom_taxid"):
        _merge(mmseqs_run, routed_claims, wrong, tmp_path / "m.tsv")
    empty = _bertax(tmp_path / "empty.tsv", {}, mmseqs_run.units)
    longer = tmp_path / "longer.fa"
    longer.write_text(mmseqs_run.units.read_text() + ">extra\nACGT\n")
    with pytest.raises(HytaxError, match=r"kept\.tsv: has no row for read \d+ \('extra'\)"):
        merge(units=longer, claims=routed_claims, bertax=empty,
              taxonomy=Taxonomy.load(mmseqs_run.taxdump), output=tmp_path / "m.tsv")
    short_claims = tmp_path / "short_claims.tsv"
    short_claims.write_text("".join(routed_claims.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(HytaxError, match=r"short_claims\.tsv: has no row for read"):
        _merge(mmseqs_run, short_claims, empty, tmp_path / "m.tsv")
