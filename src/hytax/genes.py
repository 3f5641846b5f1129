"""Proteins of a reference for the protein tier: genes predicted with pyrodigal (Prodigal).

A sequence of at least `MIN_TRAIN_NT` gets a gene model trained on itself (Prodigal's single
mode, translation table 11); shorter ones (plasmids, contigs, most virus genomes) use the
metagenomic mode, a set of pre-trained models. This is a prokaryote gene finder: it is a good
fit for bacteria, archaea and most phages; in eukaryotes it finds exons and intron-less genes
only (a spliced gene comes out in pieces or not at all), and genomes with another genetic code
(Mycoplasma's table 4, RNA viruses with frameshifts) get some genes cut short. docs/usage.md
says what it gives for each kind on the project's genomes.

Protein ids are `<sequence id>_<n>` with every character MMseqs2 might parse away (`|` and
anything outside [A-Za-z0-9._-]) replaced by `_`, so `mmseqs createdb` keeps them whole and the
taxid mapping matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrodigal

from hytax.atomic import atomic_path
from hytax.errors import HytaxError
from hytax.seqio import read_records
from hytax.tables import open_text_out, read_seq2taxid

# Prodigal needs 20 kb to train and recommends 100 kb; training on more than a few Mb buys
# nothing, so long chromosomes train on their start
MIN_TRAIN_NT = 100_000
MAX_TRAIN_NT = 5_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class GeneStats:
    sequences: int = 0
    bases: int = 0
    genes: int = 0
    single_mode: int = 0
    unmapped: int = 0


def safe_id(seq_id: str) -> str:
    return _UNSAFE.sub("_", seq_id)


def _genes(seq: str, meta_finder: pyrodigal.GeneFinder) -> tuple[pyrodigal.Genes, bool]:
    data = seq.encode()
    if len(seq) >= MIN_TRAIN_NT:
        finder = pyrodigal.GeneFinder(closed=False)
        finder.train(data[:MAX_TRAIN_NT])
        return finder.find_genes(data), True
    return meta_finder.find_genes(data), False


def proteins(fasta: Path, mapping: dict[str, int],
             stats: GeneStats) -> Iterator[tuple[str, str, int]]:
    """(protein id, amino acids, taxid) of every gene of every mapped reference sequence."""
    meta_finder = pyrodigal.GeneFinder(meta=True)
    for record in read_records(fasta):
        taxid = mapping.get(record.id)
        if taxid is None:
            stats.unmapped += 1
            continue
        stats.sequences += 1
        stats.bases += len(record.seq)
        if len(record.seq) < 90:  # not one codon triplet of a minimal gene
            continue
        genes, single = _genes(record.seq, meta_finder)
        stats.single_mode += single
        prefix = safe_id(record.id)
        for n, gene in enumerate(genes, start=1):
            stats.genes += 1
            yield f"{prefix}_{n}", gene.translate(include_stop=False), taxid


def write_proteins(*, fasta: str | Path, mapping: str | Path, proteins_out: str | Path,
                   mapping_out: str | Path) -> GeneStats:
    """Write the proteins (FASTA) and their taxid mapping (TSV) for `mmseqs createtaxdb`."""
    stats = GeneStats()
    tax_of = read_seq2taxid(Path(mapping))
    with atomic_path(proteins_out) as faa_tmp, atomic_path(mapping_out) as map_tmp, \
            open_text_out(faa_tmp) as faa, open_text_out(map_tmp) as tsv:
        for protein_id, aa, taxid in proteins(Path(fasta), tax_of, stats):
            faa.write(f">{protein_id}\n{aa}\n")
            tsv.write(f"{protein_id}\t{taxid}\n")
        if stats.genes == 0:  # inside: no empty database files are left behind
            raise HytaxError(f"{fasta}: no genes found in {stats.sequences} sequence(s) mapped "
                             f"by {mapping} ({stats.unmapped} not in the mapping)")
    return stats
