#!/usr/bin/env python3
"""Write the pipeline's small test data set (assets/test/) from the shared genome collection.

    python tools/make_test_data.py /work/shared/data [--outdir assets/test] [--seed 20241128]

Deterministic (one seeded random generator, genomes read in a fixed order). Writes:

- reference.fasta.gz   7 genomes across the four superkingdoms, each cut to <= 150 kb
- seq2taxid.tsv        sequence id -> taxid (mmseqs createtaxdb --tax-mapping-file)
- taxdump/             nodes.dmp, names.dmp, merged.dmp: the lineages of every taxid in
                       genomes.tsv (`hytax taxdump-subset`), so the bundled model's classes resolve
- sample1_R{1,2}.fastq.gz  150 pairs (150 nt mates, ~300 nt inserts, mate 2 reverse-complemented)
- sample2.fastq.gz     150 single-end reads of 150 nt
- truth.tsv            read id -> source genome, taxid, lineage names, genus taxid, kind
- samplesheet.csv      both samples, paths relative to the sheet's folder

Each sample holds reads from the reference genomes (MMseqs2 should place them), reads from
genomes whose genus is absent from the reference (BERTax should answer), reads of only N and
reads shorter than 3 nt (no valid 3-mer: nobody can classify them).
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# genome_id in genomes.tsv -> kept in the reference (cut to MAX_REF_BP)
REFERENCE = [
    "Ecoli_K12_MG1655",  # Bacteria / Proteobacteria / Escherichia
    "Saureus_N315",  # Bacteria / Firmicutes / Staphylococcus
    "Mtuberculosis_H37Rv",  # Bacteria / Actinobacteria / Mycobacterium
    "Mruminantium_M1",  # Archaea / Euryarchaeota / Methanobrevibacter
    "Scerevisiae_chrI",  # Eukaryota / Ascomycota / Saccharomyces
    "Lambda_phage",  # Viruses / Lambdalikevirus (whole, 48.5 kb)
    "SARS_CoV_2_WuhanHu1",  # Viruses / Betacoronavirus (whole, 29.9 kb)
]
# genera absent from the reference: reads MMseqs2 cannot place, for BERTax
ABSENT = [
    "Akkermansia_muciniphila_BAA835_500kb",  # Bacteria / Verrucomicrobia (no phylum in reference)
    "Acidilobus_saccharovorans_345-15",  # Archaea / Crenarchaeota
    "Marburg_virus",  # Viruses / Negarnaviricota
]
MAX_REF_BP = 150_000
READ_LEN = 150
INSERT_MEAN, INSERT_SD = 300, 30
ERROR_RATE = 0.005
# reads per sample by kind
N_REFERENCE, N_ABSENT, N_ONLY_N, N_SHORT = 114, 27, 5, 4

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass(frozen=True)
class Genome:
    genome_id: str
    taxid: int
    superkingdom: str
    phylum: str
    genus: str
    seqs: list[tuple[str, str]]  # (id, sequence), already cut


def revcomp(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def read_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, list[str]]] = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                records.append((line[1:].split()[0], []))
            elif line:
                records[-1][1].append(line.upper())
    return [(name, "".join(parts)) for name, parts in records]


def cut(seqs: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """The first `limit` bases of a genome, record by record."""
    out, left = [], limit
    for name, seq in seqs:
        if left <= 0:
            break
        out.append((name, seq[:left]))
        left -= len(out[-1][1])
    return out


def load_genomes(data: Path, ids: list[str], limit: int | None) -> list[Genome]:
    rows = {}
    with open(data / "genomes.tsv") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            row = dict(zip(header, line.rstrip("\n").split("\t"), strict=False))
            rows[row["genome_id"]] = row
    genomes = []
    for gid in ids:
        row = rows[gid]
        seqs = read_fasta(data / "genomes" / f"{gid}.fa.gz")
        if limit is not None:
            seqs = cut(seqs, limit)
        genomes.append(
            Genome(gid, int(row["taxid"]), row["superkingdom"], row["phylum"], row["genus"], seqs)
        )
    return genomes


def load_nodes(taxdump: Path) -> dict[int, tuple[int, str]]:
    nodes = {}
    with gzip.open(taxdump / "nodes.dmp.gz", "rt") as fh:
        for line in fh:
            f = line.split("\t|\t", 3)
            nodes[int(f[0])] = (int(f[1]), f[2])
    return nodes


def rank_taxid(nodes: dict[int, tuple[int, str]], taxid: int, rank: str) -> int:
    while taxid in nodes:
        parent, r = nodes[taxid]
        if r == rank:
            return taxid
        if parent == taxid:
            break
        taxid = parent
    return 0


def mutate(seq: str, rng: random.Random) -> str:
    bases = list(seq)
    for i, b in enumerate(bases):
        if b in "ACGT" and rng.random() < ERROR_RATE:
            bases[i] = rng.choice([x for x in "ACGT" if x != b])
    return "".join(bases)


def quality(n: int, rng: random.Random) -> str:
    return "".join(chr(33 + rng.choice((30, 35, 37, 40, 40, 40))) for _ in range(n))


def fragment(genome: Genome, length: int, rng: random.Random) -> str:
    """A random stretch of one record (weighted by length), random strand, few Ns."""
    weights = [max(len(s) - length, 0) for _, s in genome.seqs]
    for _ in range(100):
        _, seq = rng.choices(genome.seqs, weights=weights)[0]
        start = rng.randrange(0, len(seq) - length + 1)
        frag = seq[start : start + length]
        if frag.count("N") <= length // 50:
            return frag if rng.random() < 0.5 else revcomp(frag)
    raise SystemExit(f"{genome.genome_id}: no {length} nt stretch without Ns")


def draw_units(genomes_ref, genomes_abs, paired, rng):
    """Yield (kind, genome or None, mate1, mate2 or None) in shuffled order."""
    units = []
    for i in range(N_REFERENCE):
        units.append(("reference", genomes_ref[i % len(genomes_ref)]))
    for i in range(N_ABSENT):
        units.append(("absent", genomes_abs[i % len(genomes_abs)]))
    units += [("only_n", None)] * N_ONLY_N + [("short", None)] * N_SHORT
    rng.shuffle(units)
    for kind, genome in units:
        if kind == "only_n":
            n = rng.randint(20, READ_LEN)
            yield kind, None, "N" * n, ("N" * n if paired else None)
        elif kind == "short":
            n = rng.randint(1, 2)
            yield kind, None, "".join(rng.choice("ACGT") for _ in range(n)), (
                "".join(rng.choice("ACGT") for _ in range(n)) if paired else None
            )
        elif paired:
            insert = max(READ_LEN + 20, int(rng.gauss(INSERT_MEAN, INSERT_SD)))
            frag = fragment(genome, insert, rng)
            yield kind, genome, mutate(frag[:READ_LEN], rng), mutate(revcomp(frag)[:READ_LEN], rng)
        else:
            yield kind, genome, mutate(fragment(genome, READ_LEN, rng), rng), None


def fastq(name: str, seq: str, rng: random.Random) -> str:
    return f"@{name}\n{seq}\n+\n{quality(len(seq), rng)}\n"


def write_sample(outdir, sample, prefix, paired, ref, absent, nodes, rng, truth):
    """Write one sample's FASTQ file(s); append its truth rows."""
    names = [f"{sample}_R1.fastq.gz", f"{sample}_R2.fastq.gz"] if paired else [f"{sample}.fastq.gz"]
    # mtime=0: the same bytes on every run
    handles = [gzip.GzipFile(outdir / n, "wb", mtime=0) for n in names]
    for i, (kind, genome, m1, m2) in enumerate(draw_units(ref, absent, paired, rng), start=1):
        rid = f"{prefix}{i:04d}_{kind}"
        if paired:
            handles[0].write(fastq(f"{rid}/1", m1, rng).encode())
            handles[1].write(fastq(f"{rid}/2", m2, rng).encode())
        else:
            handles[0].write(fastq(rid, m1, rng).encode())
        if genome is None:
            truth.append([sample, rid, kind, "NA", "0", "NA", "NA", "NA", "0"])
        else:
            genus_taxid = rank_taxid(nodes, genome.taxid, "genus")
            truth.append([sample, rid, kind, genome.genome_id, str(genome.taxid),
                          genome.superkingdom, genome.phylum, genome.genus, str(genus_taxid)])
    for h in handles:
        h.close()
    return names


def write_taxdump_subset(data: Path, outdir: Path) -> None:
    """nodes/names/merged.dmp holding the lineages of every taxid in genomes.tsv."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full = tmp / "taxdump"
        full.mkdir()
        for name in ("nodes.dmp", "names.dmp", "merged.dmp"):
            src = data / "taxdump" / f"{name}.gz"
            with gzip.open(src, "rb") as fin, open(full / name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        taxids = set()
        with open(data / "genomes.tsv") as fh:
            fh.readline()
            for line in fh:
                taxids.add(int(line.split("\t")[2]))
        (tmp / "taxids.txt").write_text("".join(f"{t}\n" for t in sorted(taxids)))
        hytax = shutil.which("hytax") or str(Path(sys.executable).parent / "hytax")
        out = outdir / "taxdump"
        if out.exists():
            shutil.rmtree(out)
        subprocess.run([hytax, "taxdump-subset", "--taxdump", str(full),
                        "--taxids", str(tmp / "taxids.txt"), "--outdir", str(out)], check=True)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path, help="shared data folder (genomes/, genomes.tsv, taxdump/)")
    ap.add_argument("--outdir", type=Path, default=here / "assets" / "test")
    ap.add_argument("--seed", type=int, default=20241128)
    ap.add_argument("--skip-taxdump", action="store_true", help="keep the existing taxdump/")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)

    ref = load_genomes(args.data, REFERENCE, MAX_REF_BP)
    absent = load_genomes(args.data, ABSENT, None)
    ref_genera = {g.genus for g in ref}
    assert not ref_genera & {g.genus for g in absent}, "an 'absent' genus is in the reference"
    nodes = load_nodes(args.data / "taxdump")

    with gzip.GzipFile(args.outdir / "reference.fasta.gz", "wb", mtime=0) as fa, \
            open(args.outdir / "seq2taxid.tsv", "w") as mapping:
        for g in ref:
            for name, seq in g.seqs:
                fa.write(f">{name} {g.genome_id}\n".encode())
                for i in range(0, len(seq), 80):
                    fa.write(f"{seq[i:i + 80]}\n".encode())
                mapping.write(f"{name}\t{g.taxid}\n")

    truth: list[list[str]] = []
    s1 = write_sample(args.outdir, "sample1", "s1r", True, ref, absent, nodes, rng, truth)
    s2 = write_sample(args.outdir, "sample2", "s2r", False, ref, absent, nodes, rng, truth)
    with open(args.outdir / "truth.tsv", "w") as fh:
        fh.write("sample\tread_id\tkind\tgenome_id\ttaxid\tsuperkingdom\tphylum\tgenus\tgenus_taxid\n")
        fh.writelines("\t".join(row) + "\n" for row in truth)
    with open(args.outdir / "samplesheet.csv", "w") as fh:
        fh.write("sample,fastq_1,fastq_2\n")
        fh.write(f"sample1,{s1[0]},{s1[1]}\n")
        fh.write(f"sample2,{s2[0]},\n")

    if not args.skip_taxdump:
        write_taxdump_subset(args.data, args.outdir)
    total = sum(p.stat().st_size for p in args.outdir.rglob("*") if p.is_file())
    print(f"test data written to {args.outdir} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
