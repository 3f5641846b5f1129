"""Shared fixtures: the real genomes in ../shared/data and a small random model."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hytax.taxonomy import Taxonomy

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HYTAX_SHARED_DATA", REPO.parent / "shared" / "data"))
TAXDUMP_2013 = SHARED_DATA / "taxdump"
# A hand-written excerpt of NCBI's 2025 layout (domain, realm, acellular root).
DUMP_2025 = Path(__file__).parent / "data" / "taxonomy" / "ncbi2025"


@functools.lru_cache(maxsize=1)
def full_taxonomy() -> Taxonomy:
    """The complete 2013 dump, loaded once per test session (its load is the slowest step)."""
    if not (TAXDUMP_2013 / "nodes.dmp.gz").is_file():
        pytest.fail(f"real taxdump not found at {TAXDUMP_2013} (set HYTAX_SHARED_DATA)")
    return Taxonomy.load(TAXDUMP_2013)


# Folders that session-scoped fixtures make: later modules still use them.
SESSION_FOLDERS = ("tiny_model",)


@pytest.fixture(scope="module", autouse=True)
def _free_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Remove what a test module wrote once the module is done. The pipeline tests each build
    MMseqs2 indexes (0.5-1.5 GB a run): kept for the whole session they fill a CI machine's
    disk (a CI run stopped on "No space left on device" at 18 GB)."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    for folder in set(base.iterdir()) - before:
        if folder.is_dir() and not folder.name.startswith(SESSION_FOLDERS):
            shutil.rmtree(folder, ignore_errors=True)


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not part of the package (benchmarks/, tools/) as a module; registered in
    sys.modules, which its dataclasses need."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "genomes.tsv").is_file():
        pytest.fail(f"real test data not found at {SHARED_DATA} (set HYTAX_SHARED_DATA)")
    return SHARED_DATA


def genome_sequence(data: Path, genome_id: str, max_len: int = 200_000) -> str:
    """The first record of a genome, upper case, at most `max_len` nt."""
    from hytax.seqio import read_records

    record = next(iter(read_records(data / "genomes" / f"{genome_id}.fa.gz")))
    return record.seq[:max_len]


@pytest.fixture(scope="session")
def ecoli(shared_data: Path) -> str:
    return genome_sequence(shared_data, "Ecoli_K12_MG1655")


# Three real lineages (NCBI taxids) so a random model's classes resolve in the real taxdump.
TINY_CLASSES = {
    "superkingdom": [
        {"name": "Bacteria", "taxid": 2, "parent": 0},
        {"name": "Eukaryota", "taxid": 2759, "parent": 0},
        {"name": "unknown", "taxid": 0, "parent": 0},
    ],
    "phylum": [
        {"name": "Proteobacteria", "taxid": 1224, "parent": 0},
        {"name": "Streptophyta", "taxid": 35493, "parent": 1},
        {"name": "unknown", "taxid": 0, "parent": 2},
    ],
    "genus": [
        {"name": "Escherichia", "taxid": 561, "parent": 0},
        {"name": "Arabidopsis", "taxid": 3701, "parent": 1},
        {"name": "unknown", "taxid": 0, "parent": 2},
    ],
}


def tiny_config(kind: str = "all_in_one") -> dict:
    return {
        "architecture": {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64},
        "head": {"kind": kind, "ranks": ["superkingdom", "phylum", "genus"]},
        "classes": TINY_CLASSES,
        "window_nt": 1500,
        "taxonomy": {"release": "test"},
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small all-in-one model with random weights, saved as a model directory."""
    import torch

    from hytax.model import ModelBundle, build_model, save_model

    torch.manual_seed(1)
    config = tiny_config()
    outdir = tmp_path_factory.mktemp("tiny_model")
    save_model(ModelBundle(build_model(config), config), outdir)
    return outdir
