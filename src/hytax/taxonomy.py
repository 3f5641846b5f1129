"""NCBI taxonomy from a taxdump (nodes.dmp, names.dmp, merged.dmp): lineages, ranks, names.

Only what hytax needs is kept: parent and rank of every node, the scientific name of every node
and the merged (old -> new) taxids. Parsing is a plain split on the dmp field separator, which
loads the complete NCBI dump in seconds; other name classes are skipped before splitting.

Taxid 0 is the "no taxon" of every hytax table (and MMseqs2's "unclassified"): it resolves to
itself, has an empty lineage and is at no rank, so callers need no special case for it.

Parsing the complete dump costs seconds and hundreds of MB in every step that reads it, so a run
reads it once (`hytax taxonomy`) and writes a compact taxonomy holding only the lineages of the
taxa its databases and model can name; `Taxonomy.load` reads either. The compact file
(`taxonomy.hytax.tsv`, plain or gzipped) is:

    #hytax-taxonomy<TAB>1<TAB>taxa=N<TAB>merged=M
    taxid<TAB>parent<TAB>rank<TAB>name<TAB>unique_name
    ... N rows, every ancestor of a row is a row (root 1 is its own parent) ...
    #merged
    old_taxid<TAB>new_taxid
    ... M rows: old ids whose current taxon is one of the N ...

Loaded from it, a taxon outside those lineages is an error, and `taxid_of` finds names among the
kept taxa only (a homonym elsewhere in the dump does not make a name ambiguous there).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from hytax.errors import HytaxError

RANKS: tuple[str, ...] = ("superkingdom", "phylum", "genus")

# NCBI renamed the top rank in 2024/25: cellular organisms -> `domain` (Bacteria, Archaea,
# Eukaryota) and Viruses became an `acellular root`. All of them fill hytax's superkingdom slot;
# `realm` (the virus rank just below Viruses) deliberately does not.
RANK_ALIASES: dict[str, frozenset[str]] = {
    "superkingdom": frozenset({"superkingdom", "domain", "acellular root"}),
}

_SEP = "\t|\t"
_SCIENTIFIC = "\tscientific name\t|"
_NO_TAXON = 0
_ROOT = 1

COMPACT_NAME = "taxonomy.hytax.tsv"
COMPACT_VERSION = 1
_COMPACT_MAGIC = "#hytax-taxonomy"
_COMPACT_NODES = "taxid\tparent\trank\tname\tunique_name"
_COMPACT_MERGED = "old_taxid\tnew_taxid"
_GZIP_MAGIC = b"\x1f\x8b"


class TaxonomyError(HytaxError):
    """A taxdump that cannot be read, or a taxid or name it does not know."""


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _find(folder: Path, stem: str, required: bool) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    if required:
        raise TaxonomyError(f"{folder}: no {stem} or {stem}.gz (not an NCBI taxdump folder)")
    return None


def _dump_files(taxdump: Path) -> tuple[Path, Path, Path | None]:
    """nodes, names, merged of a taxdump folder or of an MMseqs2 seqTaxDB prefix."""
    if taxdump.is_dir():
        nodes = _find(taxdump, "nodes.dmp", True)
        names = _find(taxdump, "names.dmp", True)
        assert nodes is not None and names is not None
        return nodes, names, _find(taxdump, "merged.dmp", False)
    # createtaxdb --tax-db-mode 0 writes <db>_nodes.dmp etc. next to the sequence DB
    prefix = taxdump.name
    folder = taxdump.parent
    nodes = folder / f"{prefix}_nodes.dmp"
    names = folder / f"{prefix}_names.dmp"
    if nodes.is_file() and names.is_file():
        merged = folder / f"{prefix}_merged.dmp"
        return nodes, names, merged if merged.is_file() else None
    if (folder / f"{prefix}_taxonomy").is_file():
        raise TaxonomyError(
            f"{taxdump}: this MMseqs2 database holds its taxonomy only in the binary "
            f"{prefix}_taxonomy file; pass the taxdump folder it was built from, or rebuild "
            "with `mmseqs createtaxdb --tax-db-mode 0` to keep the .dmp files"
        )
    raise TaxonomyError(f"{taxdump}: not a taxdump folder, a compact hytax taxonomy "
                        f"({COMPACT_NAME}) nor an MMseqs2 database with .dmp files")


def _batches(path: Path) -> Iterator[list[str]]:
    """Lines in large batches (per-line iteration of a gzip stream costs more than parsing)."""
    with _open_text(path) as fh:
        while batch := fh.readlines(1 << 22):
            yield batch


def _raise_first_error(path: Path, ints: tuple[str | None, ...], keep: str | None = None) -> None:
    """Re-read a dmp file slowly to name the first malformed line (only after the fast parse
    failed), then raise."""
    for number, fields in _dmp_rows(path, len(ints), keep):
        for text, what in zip(fields, ints, strict=True):
            if what is not None:
                _int_field(path, number, text, what)
    raise TaxonomyError(f"{path}: malformed (expected NCBI dmp lines: fields separated by "
                        "'\\t|\\t', each line ending in '\\t|')")


def _dmp_rows(path: Path, fields: int, keep: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line number, the first `fields` fields) of each dmp line; lines that do not end with
    `keep` are skipped unsplit (names.dmp is mostly synonyms we never use)."""
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            if keep is not None and keep not in line:
                continue
            # maxsplit keeps the per-line cost low on a million-line file
            parts = line.split(_SEP, fields)
            if len(parts) <= fields:
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").removesuffix("\t|").split(_SEP)
                if len(parts) < fields:
                    raise TaxonomyError(
                        f"{path}: line {number}: expected at least {fields} fields separated "
                        f"by '\\t|\\t', found {len(parts)}"
                    )
            yield number, parts[:fields]


def _int_field(path: Path, number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TaxonomyError(f"{path}: line {number}: {what} '{text}' is not an integer") from None


class Taxonomy:
    """An NCBI taxonomy tree with scientific names; load it with `Taxonomy.load`."""

    def __init__(
        self,
        parents: dict[int, int],
        ranks: dict[int, str],
        names: dict[int, str],
        merged: dict[int, int] | None = None,
        unique_names: dict[int, str] | None = None,
        source: str = "taxonomy",
    ) -> None:
        self._parents = parents
        self._ranks = ranks
        self._names = names
        self._merged = merged or {}
        self._unique = unique_names or {}
        self._by_name: dict[str, int] | None = None
        self.source = source

    # --- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, taxdump: str | Path) -> Taxonomy:
        """Read a compact taxonomy (the file, or a folder holding `taxonomy.hytax.tsv[.gz]` and
        no nodes.dmp), a taxdump folder (plain or gzipped .dmp) or an MMseqs2 seqTaxDB prefix."""
        taxdump = Path(taxdump)
        compact = _compact_file(taxdump)
        if compact is not None:
            return _read_compact(compact)
        nodes_path, names_path, merged_path = _dump_files(taxdump)
        parents, ranks = cls._read_nodes(nodes_path)
        names, unique = cls._read_names(names_path, parents)
        merged = cls._read_merged(merged_path, parents) if merged_path else {}
        if _ROOT not in parents:
            raise TaxonomyError(f"{nodes_path}: no root node (taxid 1)")
        return cls(parents, ranks, names, merged, unique, str(taxdump))

    @staticmethod
    def _read_nodes(path: Path) -> tuple[dict[int, int], dict[int, str]]:
        parents: dict[int, int] = {}
        ranks: dict[int, str] = {}
        interned: dict[str, str] = {}  # a few dozen rank strings shared by a million nodes
        try:
            # the hot loop of loading: no per-line generator or validation call
            for batch in _batches(path):
                for line in batch:
                    if line.isspace():
                        continue
                    parts = line.split(_SEP, 3)
                    taxid = int(parts[0])
                    parents[taxid] = int(parts[1])
                    rank = parts[2]
                    if len(parts) == 3:  # a dump trimmed to taxid, parent, rank
                        rank = rank.rstrip("\r\n").removesuffix("\t|")
                    ranks[taxid] = interned.setdefault(rank, rank)
        except (ValueError, IndexError):
            _raise_first_error(path, ("taxid", "parent taxid", None))
        if not parents:
            raise TaxonomyError(f"{path}: no nodes")
        for taxid, parent in parents.items():
            if parent not in parents:
                raise TaxonomyError(f"{path}: taxid {taxid} has parent {parent}, which is no node")
        return parents, ranks

    @staticmethod
    def _read_names(path: Path, parents: dict[int, int]) -> tuple[dict[int, str], dict[int, str]]:
        names: dict[int, str] = {}
        unique: dict[int, str] = {}
        try:
            for batch in _batches(path):
                for line in batch:
                    if _SCIENTIFIC not in line:
                        continue
                    taxid_text, name, unique_name, _ = line.split(_SEP, 3)
                    taxid = int(taxid_text)
                    names[taxid] = name
                    if unique_name:
                        unique[taxid] = unique_name
        except (ValueError, IndexError):
            _raise_first_error(path, ("taxid", None, None, None), keep=_SCIENTIFIC)
        missing = next((t for t in parents if t not in names), None)
        if missing is not None:
            raise TaxonomyError(f"{path}: taxid {missing} has no scientific name")
        return names, unique

    @staticmethod
    def _read_merged(path: Path, parents: dict[int, int]) -> dict[int, int]:
        merged: dict[int, int] = {}
        for number, fields in _dmp_rows(path, 2):
            old = _int_field(path, number, fields[0], "old taxid")
            merged[old] = _int_field(path, number, fields[1], "new taxid")
        return merged

    # --- queries ---------------------------------------------------------------------------------

    def __contains__(self, taxid: object) -> bool:
        return isinstance(taxid, int) and (taxid in self._parents or taxid in self._merged)

    def __len__(self) -> int:
        return len(self._parents)

    def resolve(self, taxid: int) -> int:
        """The current taxid of `taxid` (following merged.dmp); 0 stays 0."""
        if taxid in self._parents or taxid == _NO_TAXON:
            return taxid
        new = self._merged.get(taxid)
        # merged.dmp may chain (a -> b, b merged again later); follow it a few steps
        for _ in range(8):
            if new is None:
                break
            if new in self._parents:
                return new
            new = self._merged.get(new)
        raise TaxonomyError(f"taxid {taxid} is not in the taxonomy {self.source}")

    def name(self, taxid: int) -> str:
        taxid = self.resolve(taxid)
        return "unclassified" if taxid == _NO_TAXON else self._names[taxid]

    def rank(self, taxid: int) -> str:
        taxid = self.resolve(taxid)
        return "no rank" if taxid == _NO_TAXON else self._ranks[taxid]

    def parent(self, taxid: int) -> int:
        """The parent taxid; root (1) is its own parent, as in nodes.dmp."""
        taxid = self.resolve(taxid)
        return _NO_TAXON if taxid == _NO_TAXON else self._parents[taxid]

    def lineage(self, taxid: int) -> list[int]:
        """Taxids from root (1) down to `taxid` itself; empty for 0."""
        return list(reversed(self._up(self.resolve(taxid))))

    def _up(self, taxid: int) -> list[int]:
        path: list[int] = []
        while taxid != _NO_TAXON:
            path.append(taxid)
            parent = self._parents[taxid]
            if parent == taxid:
                break
            if len(path) > 1000:
                raise TaxonomyError(f"{self.source}: taxid {taxid} is in a parent cycle")
            taxid = parent
        return path

    def at_rank(self, taxid: int, rank: str) -> int:
        """The ancestor-or-self of `taxid` at `rank` (superkingdom includes domain and acellular
        root); 0 if the lineage has no such node."""
        wanted = RANK_ALIASES.get(rank, frozenset({rank}))
        for node in self._up(self.resolve(taxid)):
            if self._ranks[node] in wanted:
                return node
        return _NO_TAXON

    def ranks(self, taxid: int, ranks: Iterable[str] = RANKS) -> dict[str, int]:
        """{rank: ancestor-or-self at that rank, 0 if none} in one walk up the tree."""
        wanted = list(ranks)
        out = dict.fromkeys(wanted, _NO_TAXON)
        slot_of: dict[str, str] = {}
        for rank in wanted:
            for alias in RANK_ALIASES.get(rank, frozenset({rank})):
                slot_of[alias] = rank
        for node in self._up(self.resolve(taxid)):
            slot = slot_of.get(self._ranks[node])
            if slot is not None and out[slot] == _NO_TAXON:
                out[slot] = node
        return out

    def taxid_of(self, name: str) -> int:
        """The taxid whose scientific name (or NCBI unique name, e.g. 'Bacillus <bacterium>')
        is `name`; an error if none or several taxa carry it."""
        if self._by_name is None:
            self._by_name = self._name_index()
        taxid = self._by_name.get(name)
        if taxid is None:
            raise TaxonomyError(f"no taxon named '{name}' in the taxonomy {self.source}")
        if taxid < 0:
            raise TaxonomyError(
                f"the name '{name}' is ambiguous in the taxonomy {self.source}; use its NCBI "
                "unique name (e.g. 'Bacillus <bacterium>') or the taxid"
            )
        return taxid

    def _name_index(self) -> dict[str, int]:
        # -1 marks a homonym; built on first use since most runs never look names up
        index: dict[str, int] = {}
        for taxid, name in self._names.items():
            index[name] = -1 if name in index else taxid
        for taxid, unique in self._unique.items():
            index[unique] = taxid
        return index

    # --- subsetting ------------------------------------------------------------------------------

    def closure(self, taxids: Iterable[int]) -> set[int]:
        """Every node on the lineages of `taxids` (resolved through merged.dmp)."""
        keep: set[int] = set()
        for taxid in taxids:
            for node in self._up(self.resolve(taxid)):
                if node in keep:
                    break
                keep.add(node)
        return keep

    def write_dump(self, keep: set[int], outdir: Path) -> None:
        """nodes.dmp, names.dmp, merged.dmp and an empty delnodes.dmp for the lineage-closed
        set of nodes `keep`."""
        outdir.mkdir(parents=True, exist_ok=True)
        order = sorted(keep)
        with open(outdir / "nodes.dmp", "w", encoding="utf-8") as out:
            for taxid in order:
                # 13 columns as NCBI writes them; only the first three carry information here
                out.write(f"{taxid}\t|\t{self._parents[taxid]}\t|\t{self._ranks[taxid]}\t|\t\t|"
                          "\t0\t|\t0\t|\t11\t|\t0\t|\t0\t|\t0\t|\t0\t|\t0\t|\t\t|\n")
        with open(outdir / "names.dmp", "w", encoding="utf-8") as out:
            for taxid in order:
                unique = self._unique.get(taxid, "")
                out.write(f"{taxid}\t|\t{self._names[taxid]}\t|\t{unique}\t|\tscientific name\t|\n")
        with open(outdir / "merged.dmp", "w", encoding="utf-8") as out:
            for old, new in sorted(self._merged.items()):
                if new in keep:
                    out.write(f"{old}\t|\t{new}\t|\n")
        # empty, but `mmseqs createtaxdb --tax-db-mode 0` copies it and fails without it
        (outdir / "delnodes.dmp").write_text("", encoding="utf-8")

    def merged_into(self, keep: set[int]) -> dict[int, int]:
        """{old: current taxid} of every merged id whose current taxon is in `keep`."""
        out: dict[int, int] = {}
        for old in self._merged:
            try:
                new = self.resolve(old)
            except TaxonomyError:
                continue  # a merged.dmp entry pointing nowhere names no taxon we keep
            if new in keep:
                out[old] = new
        return out

    def write_compact(self, keep: set[int], output: Path) -> tuple[int, int]:
        """The compact taxonomy of the lineage-closed set `keep` (gzipped when `output` ends in
        .gz); returns (taxa, merged ids) written."""
        merged = self.merged_into(keep)
        lines = [f"{_COMPACT_MAGIC}\t{COMPACT_VERSION}\ttaxa={len(keep)}\tmerged={len(merged)}",
                 _COMPACT_NODES]
        for taxid in sorted(keep):
            name, unique = self._names[taxid], self._unique.get(taxid, "")
            if any(c in text for text in (name, unique) for c in "\t\r\n"):
                raise TaxonomyError(f"{self.source}: the name of taxid {taxid} holds a tab or line "
                                    "break, which the compact taxonomy cannot store")
            lines.append(f"{taxid}\t{self._parents[taxid]}\t{self._ranks[taxid]}\t{name}\t{unique}")
        lines += ["#merged", _COMPACT_MERGED]
        lines += [f"{old}\t{new}" for old, new in sorted(merged.items())]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix == ".gz":
            # no time stamp or file name in the header: the same taxa give the same bytes
            output.write_bytes(gzip.compress(data, mtime=0))
        else:
            output.write_bytes(data)
        return len(keep), len(merged)


# --- the compact taxonomy ------------------------------------------------------------------------


def _starts_compact(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(64)
        except (OSError, EOFError):
            return False
    return head.startswith(_COMPACT_MAGIC.encode())


def _compact_file(path: Path) -> Path | None:
    """The compact taxonomy `path` names, if any. A folder with a complete taxdump is read as
    such even when a compact file lies beside it: the complete dump can never lack a taxon."""
    if path.is_file():
        return path if _starts_compact(path) else None
    if path.is_dir() and _find(path, "nodes.dmp", False) is None:
        return _find(path, COMPACT_NAME, False)
    return None


def _read_compact(path: Path) -> Taxonomy:
    """Parse a compact taxonomy; any fault names the file and line."""
    raw = path.read_bytes()
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TaxonomyError(f"{path}: damaged gzip data ({exc})") from None
    lines = raw.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n_taxa, n_merged = _compact_counts(path, lines)
    end = 2 + n_taxa
    if lines[1:2] != [_COMPACT_NODES] or lines[end : end + 2] != ["#merged", _COMPACT_MERGED] \
            or len(lines) != end + 2 + n_merged:
        raise TaxonomyError(
            f"{path}: expected a header line '{_COMPACT_NODES}', {n_taxa} taxa, '#merged', "
            f"'{_COMPACT_MERGED}' and {n_merged} merged ids (the counts of line 1); the file "
            f"has {len(lines)} lines: truncated or edited?")
    parents: dict[int, int] = {}
    ranks: dict[int, str] = {}
    names: dict[int, str] = {}
    unique: dict[int, str] = {}
    interned: dict[str, str] = {}
    for number in range(3, end + 1):
        fields = lines[number - 1].split("\t")
        if len(fields) != 5:
            raise TaxonomyError(f"{path}: line {number}: expected 5 tab-separated fields "
                                f"({_COMPACT_NODES}), found {len(fields)}")
        taxid = _int_field(path, number, fields[0], "taxid")
        parents[taxid] = _int_field(path, number, fields[1], "parent taxid")
        ranks[taxid] = interned.setdefault(fields[2], fields[2])
        names[taxid] = fields[3]
        if fields[4]:
            unique[taxid] = fields[4]
    merged: dict[int, int] = {}
    for number in range(end + 3, len(lines) + 1):
        fields = lines[number - 1].split("\t")
        if len(fields) != 2:
            raise TaxonomyError(f"{path}: line {number}: expected 2 tab-separated fields "
                                f"({_COMPACT_MERGED}), found {len(fields)}")
        old = _int_field(path, number, fields[0], "old taxid")
        merged[old] = _int_field(path, number, fields[1], "new taxid")
    _check_compact(path, parents, merged)
    return Taxonomy(parents, ranks, names, merged, unique,
                    f"{path} (compact: only the taxa it was made for)")


def _compact_counts(path: Path, lines: list[str]) -> tuple[int, int]:
    fields = lines[0].split("\t") if lines else []
    if not fields or fields[0] != _COMPACT_MAGIC:
        raise TaxonomyError(f"{path}: line 1: not a compact hytax taxonomy "
                            f"(expected '{_COMPACT_MAGIC}')")
    if fields[1:2] != [str(COMPACT_VERSION)]:
        version = fields[1] if len(fields) > 1 else "none"
        raise TaxonomyError(f"{path}: line 1: compact taxonomy format version {version}; this "
                            f"hytax reads version {COMPACT_VERSION} (rebuild it with "
                            "`hytax taxonomy`)")
    counts = dict(f.partition("=")[::2] for f in fields[2:])
    try:
        return int(counts["taxa"]), int(counts["merged"])
    except (KeyError, ValueError):
        raise TaxonomyError(f"{path}: line 1: expected 'taxa=N' and 'merged=M' after the "
                            "version") from None


def _check_compact(path: Path, parents: dict[int, int], merged: dict[int, int]) -> None:
    if _ROOT not in parents:
        raise TaxonomyError(f"{path}: no root node (taxid 1)")
    for taxid, parent in parents.items():
        if parent not in parents:
            raise TaxonomyError(f"{path}: taxid {taxid} has parent {parent}, which is no row "
                                "(a compact taxonomy holds every ancestor of its taxa)")
    for old, new in merged.items():
        if new not in parents:
            raise TaxonomyError(f"{path}: merged id {old} points to {new}, which is no row")


# --- taxa to keep --------------------------------------------------------------------------------


def read_taxid_file(path: Path) -> dict[int, str]:
    """{taxid: where it was first seen} of a file holding one taxid per line in its last column:
    a plain list, an MMseqs2 `<db>_mapping` (key, taxid) or a seq2taxid TSV (id, taxid), plain
    or gzipped; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise TaxonomyError(f"{path}: no such file")
    first: dict[int, str] = {}
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            taxid = _int_field(path, number, fields[-1], "taxid")
            if taxid not in first:
                first[taxid] = f"{path}: line {number}"
    return first


def read_model_taxids(model_dir: Path) -> dict[int, str]:
    """{taxid: which class names it} of a model's config.json class lists."""
    config = model_dir / "config.json" if model_dir.is_dir() else model_dir
    try:
        classes = json.loads(config.read_text(encoding="utf-8"))["classes"]
        entries = [(rank, c["name"], int(c["taxid"]))
                   for rank, members in classes.items() for c in members]
    except FileNotFoundError:
        raise TaxonomyError(f"{config}: no such file (a model folder holds config.json)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TaxonomyError(f"{config}: no readable 'classes' lists of "
                            f"{{name, taxid}} ({type(exc).__name__}: {exc})") from None
    first: dict[int, str] = {}
    for rank, name, taxid in entries:
        first.setdefault(taxid, f"{config}: {rank} class '{name}'")
    return first


def lineage_closure(taxonomy: Taxonomy, wanted: dict[int, str]) -> set[int]:
    """Root and every node on the lineages of `wanted` ({taxid: where it came from}); an old
    taxid counts through merged.dmp, an unknown one is an error naming where it came from."""
    current: list[int] = []
    for taxid, where in wanted.items():
        try:
            current.append(taxonomy.resolve(taxid))
        except TaxonomyError:
            raise TaxonomyError(f"{where}: taxid {taxid} is in neither the nodes nor the merged "
                                f"ids of the taxonomy {taxonomy.source}") from None
    return taxonomy.closure(current) | {_ROOT}


def _wanted(taxid_files: Iterable[Path], model_dirs: Iterable[Path]) -> dict[int, str]:
    wanted: dict[int, str] = {}
    for path in taxid_files:
        for taxid, where in read_taxid_file(Path(path)).items():
            wanted.setdefault(taxid, where)
    for model in model_dirs:
        for taxid, where in read_model_taxids(Path(model)).items():
            wanted.setdefault(taxid, where)
    wanted.pop(_NO_TAXON, None)
    return wanted


def write_compact_taxonomy(
    taxdump: str | Path,
    taxid_files: Iterable[str | Path],
    model_dirs: Iterable[str | Path],
    output: str | Path,
) -> tuple[int, int]:
    """Write the compact taxonomy of every taxon the taxid files (MMseqs2 mappings, seq2taxid
    tables) and models name; returns (taxa, merged ids) written."""
    wanted = _wanted([Path(p) for p in taxid_files], [Path(m) for m in model_dirs])
    taxonomy = Taxonomy.load(taxdump)
    keep = lineage_closure(taxonomy, wanted)
    for path in taxid_files:
        check_database_names(taxonomy, Path(path))
    return taxonomy.write_compact(keep, Path(output))


# more differing names than this share means another taxonomy, not another release of NCBI's
_MAX_RENAMED = 0.1


def check_database_names(taxonomy: Taxonomy, mapping: Path) -> None:
    """An MMseqs2 seqTaxDB keeps the names of its taxonomy beside its `<db>_mapping`
    (`<db>_names.dmp`). Taxids of another taxonomy (GTDB's, in seqTaxDBs that `mmseqs databases`
    builds) are small numbers that NCBI also uses for other taxa, so they resolve without error
    and would be merged silently with NCBI's; their names give them away."""
    if not mapping.name.endswith("_mapping"):
        return
    names_dmp = mapping.with_name(mapping.name.removesuffix("_mapping") + "_names.dmp")
    if not names_dmp.is_file():
        return
    taxids = {t for t in read_taxid_file(mapping) if t != _NO_TAXON}
    theirs: dict[int, str] = {}
    with _open_text(names_dmp) as fh:
        for line in fh:
            fields = line.split("\t|\t")
            if len(fields) >= 4 and fields[3].startswith("scientific name"):
                taxid = int(fields[0]) if fields[0].isdigit() else -1
                if taxid in taxids:
                    theirs[taxid] = fields[1]
    differ = [(t, name) for t, name in sorted(theirs.items())
              if taxonomy.name(taxonomy.resolve(t)) != name]
    if theirs and len(differ) > _MAX_RENAMED * len(theirs):
        taxid, name = differ[0]
        raise TaxonomyError(
            f"{mapping}: {len(differ)} of {len(theirs)} taxa of this database have other names "
            f"in {names_dmp} than in the run's taxonomy {taxonomy.source} (taxid {taxid}: "
            f"'{name}' there, '{taxonomy.name(taxonomy.resolve(taxid))}' here): the database was "
            "built on another taxonomy (GTDB's?). Classify with it in a run of its own, with its "
            "own taxdump (--taxdump), or rebuild it with this run's taxdump")


def write_subset(taxdump: str | Path, taxids_file: str | Path, outdir: str | Path) -> None:
    """Write a small taxdump (plain nodes.dmp, names.dmp, merged.dmp) holding the full lineages
    of the taxids listed in `taxids_file`; it loads here and in `mmseqs createtaxdb`."""
    wanted = _wanted([Path(taxids_file)], [])
    taxonomy = Taxonomy.load(taxdump)
    keep = lineage_closure(taxonomy, wanted)
    taxonomy.write_dump(keep, Path(outdir))
    print(f"{len(keep)} taxa written to {outdir}", file=sys.stderr)
