"""Convert the original BERTax keras model (keras-bert 0.89, Keras 2 HDF5) into a hytax model.

The HDF5 file is read with h5py alone (no TensorFlow). keras-bert layers map onto hytax's weight
names by the table in `_encoder_state`; keras Dense kernels are [in, out] and are transposed.
BERTax's fine-tuning head (`bertax_training/models/bert_utils.py`,
`generate_bert_with_pretrained_multi_tax`) has one softmax Dense layer `{rank}_out` per rank on
the `NSP-Dense` (pooler) output, where rank r reads
`concatenate([out_0, ..., out_{r-1}, NSP-Dense])` (probabilities first); hytax's all-in-one head
reads `[pooled, p_0, ..., p_{r-1}]`, so kernel rows are reordered. The concatenation order is
taken from the file's model config when it has one.

keras-bert numerics the hytax config reproduces: tanh-approximated GELU
(`keras_transformer.gelu`), layer-norm epsilon K.epsilon()**2 = 1e-14
(`keras_layer_normalization`), dropout before `Embedding-Norm` (inactive at inference), and
[PAD] (token 0, `mask_zero=True`) keys masked in every attention layer.

BERTax does not store its class names in the HDF5 file; the published model's lists are the
`CLASS_LABELS` of `bertax/utils.py` (github.com/f-kretschmer/bertax, 5 superkingdoms, 44 phyla,
156 genera, alphabetical with `unknown` last). They are `BERTAX_CLASSES` below and are used when
the model's output sizes match them; other models need a classes JSON file
(`{"superkingdom": [...], "phylum": [...], "genus": [...]}`, in output order).
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hytax.errors import HytaxError
from hytax.model import BertConfig, BertTax, ModelBundle, head_config, save_model
from hytax.taxonomy import RANK_ALIASES, Taxonomy, TaxonomyError
from hytax.tokenizer import VOCAB

WINDOW_NT = 1500  # BERTax's window: [CLS] + 499 3-mers, padded to 502 tokens
DEFAULT_HEADS = 5  # the published model's head count (paper); heads are not in the weights
KERAS_LAYER_NORM_EPS = 1e-14  # K.epsilon() ** 2
UNKNOWN = "unknown"
POOLER = "NSP-Dense"
OUT_SUFFIX = "_out"

# The published model's classes: bertax/utils.py CLASS_LABELS (f-kretschmer/bertax @ 7e68994).
BERTAX_CLASSES: dict[str, list[str]] = {
    "superkingdom": ["Archaea", "Bacteria", "Eukaryota", "Viruses", "unknown"],
    "phylum": [
        "Actinobacteria", "Apicomplexa", "Aquificae", "Arthropoda", "Artverviricota",
        "Ascomycota", "Bacillariophyta", "Bacteroidetes", "Basidiomycota",
        "Candidatus Thermoplasmatota", "Chlamydiae", "Chlorobi", "Chloroflexi", "Chlorophyta",
        "Chordata", "Crenarchaeota", "Cyanobacteria", "Deinococcus-Thermus", "Euglenozoa",
        "Euryarchaeota", "Evosea", "Firmicutes", "Fusobacteria", "Gemmatimonadetes",
        "Kitrinoviricota", "Lentisphaerae", "Mollusca", "Negarnaviricota", "Nematoda",
        "Nitrospirae", "Peploviricota", "Pisuviricota", "Planctomycetes", "Platyhelminthes",
        "Proteobacteria", "Rhodophyta", "Spirochaetes", "Streptophyta", "Tenericutes",
        "Thaumarchaeota", "Thermotogae", "Uroviricota", "Verrucomicrobia", "unknown",
    ],
    "genus": [
        "Acidilobus", "Acidithiobacillus", "Actinomyces", "Actinopolyspora", "Acyrthosiphon",
        "Aeromonas", "Akkermansia", "Anas", "Apis", "Aquila", "Archaeoglobus", "Asparagus",
        "Aspergillus", "Astyanax", "Aythya", "Bdellovibrio", "Beta", "Betta", "Bifidobacterium",
        "Botrytis", "Brachyspira", "Bradymonas", "Brassica", "Caenorhabditis", "Calypte",
        "Candidatus Kuenenia", "Candidatus Nitrosocaldus", "Candidatus Promineofilum",
        "Carassius", "Cercospora", "Chanos", "Chlamydia", "Chrysemys", "Ciona", "Citrus",
        "Clupea", "Coffea", "Colletotrichum", "Cottoperca", "Crassostrea", "Cryptococcus",
        "Cucumis", "Cucurbita", "Cyanidioschyzon", "Cynara", "Cynoglossus", "Daucus",
        "Deinococcus", "Denticeps", "Desulfovibrio", "Dictyostelium", "Drosophila", "Echeneis",
        "Egibacter", "Egicoccus", "Elaeis", "Equus", "Erpetoichthys", "Esox", "Euzebya",
        "Fervidicoccus", "Frankia", "Fusarium", "Gadus", "Gallus", "Gemmata", "Gopherus",
        "Gossypium", "Gouania", "Helianthus", "Ictalurus", "Ktedonosporobacter", "Legionella",
        "Leishmania", "Lepisosteus", "Leptospira", "Limnochorda", "Malassezia", "Manihot",
        "Mariprofundus", "Methanobacterium", "Methanobrevibacter", "Methanocaldococcus",
        "Methanocella", "Methanopyrus", "Methanosarcina", "Microcaecilia", "Modestobacter",
        "Monodelphis", "Mus", "Musa", "Myripristis", "Neisseria", "Nitrosopumilus",
        "Nitrososphaera", "Nitrospira", "Nymphaea", "Octopus", "Olea", "Oncorhynchus",
        "Ooceraea", "Ornithorhynchus", "Oryctolagus", "Oryzias", "Ostreococcus", "Papaver",
        "Perca", "Phaeodactylum", "Phyllostomus", "Physcomitrium", "Plasmodium", "Podarcis",
        "Pomacea", "Populus", "Prosthecochloris", "Pseudomonas", "Punica", "Pyricularia",
        "Pyrobaculum", "Quercus", "Rhinatrema", "Rhopalosiphum", "Roseiflexus", "Rubrobacter",
        "Rudivirus", "Salarias", "Salinisphaera", "Sarcophilus", "Schistosoma", "Scleropages",
        "Sedimentisphaera", "Sesamum", "Solanum", "Sparus", "Sphaeramia", "Spodoptera",
        "Sporisorium", "Stanieria", "Streptomyces", "Strigops", "Synechococcus", "Takifugu",
        "Thalassiosira", "Theileria", "Thermococcus", "Thermogutta", "Thermus", "Tribolium",
        "Trichoplusia", "Ustilago", "Vibrio", "Vitis", "Xenopus", "Xiphophorus",
        "Zymoseptoria", "unknown",
    ],
}


class ConversionError(HytaxError):
    """A keras model file that cannot be converted; the message names the file and layer."""


class ConversionWarning(UserWarning):
    """Something converted but worth a look (e.g. class names not found in the taxdump)."""


# --- reading the HDF5 file ------------------------------------------------------------------------


@dataclass
class KerasFile:
    """Weights per layer (short names: `kernel`, `Wq`, `gamma`, ...) and the model config."""

    path: Path
    layers: dict[str, dict[str, np.ndarray]]
    layer_order: list[str]
    model_config: dict | None
    keras_version: str | None = None

    def weights(self, layer: str, *names: str) -> list[np.ndarray]:
        found = self.layers.get(layer)
        if found is None:
            raise ConversionError(f"{self.path}: layer '{layer}' is missing")
        missing = [n for n in names if n not in found]
        if missing:
            raise ConversionError(
                f"{self.path}: layer '{layer}' has no weight {', '.join(missing)} "
                f"(has {', '.join(sorted(found)) or 'none'})"
            )
        return [found[n] for n in names]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _short_name(layer: str, weight: str) -> str:
    """'Encoder-1-FeedForward/Encoder-1-FeedForward_W1:0' -> 'W1', 'NSP-Dense/bias:0' -> 'bias'."""
    name = weight.rsplit("/", 1)[-1].split(":", 1)[0]
    return name.removeprefix(f"{layer}_")


def read_keras_h5(path: str | Path) -> KerasFile:
    """Layer weights and model config of a Keras 2 HDF5 model or weights file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ConversionError(f"{path}: not an HDF5 (keras .h5) file ({exc})") from None
    with handle:
        config_text = handle.attrs.get("model_config")
        version = handle.attrs.get("keras_version")
        root = handle.get("model_weights", handle)
        if "layer_names" not in root.attrs:
            raise ConversionError(f"{path}: an HDF5 file but no keras model (no layer_names)")
        order = [_text(n) for n in root.attrs["layer_names"]]
        layers = {name: _layer_weights(path, root, name) for name in order}
    try:
        config = json.loads(_text(config_text)) if config_text is not None else None
    except ValueError as exc:
        raise ConversionError(f"{path}: unreadable model_config attribute ({exc})") from None
    return KerasFile(path, layers, order, config, _text(version) if version is not None else None)


def _layer_weights(path: Path, root: Any, layer: str) -> dict[str, np.ndarray]:
    if layer not in root:
        raise ConversionError(f"{path}: layer '{layer}' is listed but has no weight group")
    group = root[layer]
    names = [_text(n) for n in group.attrs.get("weight_names", [])]
    try:
        return {_short_name(layer, n): np.asarray(group[n], dtype=np.float32) for n in names}
    except KeyError as exc:
        raise ConversionError(f"{path}: layer '{layer}': weight missing ({exc})") from None


# --- architecture ---------------------------------------------------------------------------------


def _layer_config(keras: KerasFile, layer: str) -> dict | None:
    if keras.model_config is None:
        return None
    for item in keras.model_config.get("config", {}).get("layers", []):
        if item.get("name") == layer:
            return item
    return None


def _count_blocks(keras: KerasFile) -> int:
    n = 0
    while f"Encoder-{n + 1}-MultiHeadSelfAttention" in keras.layers:
        n += 1
    if n == 0:
        raise ConversionError(
            f"{keras.path}: layer 'Encoder-1-MultiHeadSelfAttention' is missing "
            "(not a keras-bert model)"
        )
    return n


def _heads(keras: KerasFile, hidden: int, heads: int | None) -> int:
    item = _layer_config(keras, "Encoder-1-MultiHeadSelfAttention")
    stored = item["config"].get("head_num") if item else None
    if stored is not None and heads is not None and int(stored) != heads:
        raise ConversionError(
            f"{keras.path}: layer 'Encoder-1-MultiHeadSelfAttention' has {stored} heads "
            f"in the model config, not {heads}"
        )
    n = int(stored) if stored is not None else heads or DEFAULT_HEADS
    if hidden % n:
        raise ConversionError(
            f"{keras.path}: {n} attention heads do not divide the hidden size {hidden}"
        )
    return n


def infer_architecture(keras: KerasFile, heads: int | None = None) -> BertConfig:
    (token,) = keras.weights("Embedding-Token", "embeddings")
    (position,) = keras.weights("Embedding-Position", "embeddings")
    (segment,) = keras.weights("Embedding-Segment", "embeddings")
    (w1,) = keras.weights("Encoder-1-FeedForward", "W1")
    if token.shape[0] != len(VOCAB):
        raise ConversionError(
            f"{keras.path}: layer 'Embedding-Token' has {token.shape[0]} tokens; the BERTax "
            f"3-mer vocabulary has {len(VOCAB)}"
        )
    hidden = int(token.shape[1])
    return BertConfig(
        hidden=hidden,
        layers=_count_blocks(keras),
        heads=_heads(keras, hidden, heads),
        intermediate=int(w1.shape[1]),
        max_positions=int(position.shape[0]),
        segments=int(segment.shape[0]),
        layer_norm_eps=KERAS_LAYER_NORM_EPS,
        gelu="tanh",
    )


# --- weights --------------------------------------------------------------------------------------


def _dense(keras: KerasFile, layer: str, kernel: str, bias: str) -> tuple[np.ndarray, np.ndarray]:
    w, b = keras.weights(layer, kernel, bias)
    return w.T, b


def _norm(keras: KerasFile, layer: str) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta = keras.weights(layer, "gamma", "beta")
    return gamma, beta


def _block_state(keras: KerasFile, i: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """(keras layer, hytax name, value) for encoder block i (0-based)."""
    attn, ff = f"Encoder-{i + 1}-MultiHeadSelfAttention", f"Encoder-{i + 1}-FeedForward"
    prefix = f"encoder.blocks.{i}"
    for ours, w, b in [("q", "Wq", "bq"), ("k", "Wk", "bk"), ("v", "Wv", "bv"), ("o", "Wo", "bo")]:
        weight, bias = _dense(keras, attn, w, b)
        yield attn, f"{prefix}.{ours}.weight", weight
        yield attn, f"{prefix}.{ours}.bias", bias
    for ours, layer in [("attn_norm", f"{attn}-Norm"), ("ff_norm", f"{ff}-Norm")]:
        gamma, beta = _norm(keras, layer)
        yield layer, f"{prefix}.{ours}.weight", gamma
        yield layer, f"{prefix}.{ours}.bias", beta
    for ours, w, b in [("ff_in", "W1", "b1"), ("ff_out", "W2", "b2")]:
        weight, bias = _dense(keras, ff, w, b)
        yield ff, f"{prefix}.{ours}.weight", weight
        yield ff, f"{prefix}.{ours}.bias", bias


def _encoder_state(keras: KerasFile, layers: int) -> Iterator[tuple[str, str, np.ndarray]]:
    for layer, ours in [
        ("Embedding-Token", "token"),
        ("Embedding-Segment", "segment"),
        ("Embedding-Position", "position"),
    ]:
        yield layer, f"encoder.{ours}.weight", keras.weights(layer, "embeddings")[0]
    gamma, beta = _norm(keras, "Embedding-Norm")
    yield "Embedding-Norm", "encoder.embed_norm.weight", gamma
    yield "Embedding-Norm", "encoder.embed_norm.bias", beta
    for i in range(layers):
        yield from _block_state(keras, i)
    weight, bias = _dense(keras, POOLER, "kernel", "bias")
    yield POOLER, "encoder.pooler.weight", weight
    yield POOLER, "encoder.pooler.bias", bias


def output_layers(keras: KerasFile) -> list[str]:
    """The softmax output layers in output order (`{rank}_out` in BERTax)."""
    if keras.model_config is not None:
        outputs = keras.model_config.get("config", {}).get("output_layers", [])
        names = [_text(o[0]) for o in outputs]
    else:
        names = [n for n in keras.layer_order if n.endswith(OUT_SUFFIX) and keras.layers[n]]
    if not names:
        raise ConversionError(f"{keras.path}: no output layers ('{{rank}}{OUT_SUFFIX}') found")
    return names


def _ranks(keras: KerasFile, outputs: list[str]) -> list[str]:
    """Rank names from BERTax's `{rank}_out` layer names; BERTax's three ranks otherwise."""
    if all(o.endswith(OUT_SUFFIX) for o in outputs):
        return [o.removesuffix(OUT_SUFFIX) for o in outputs]
    if len(outputs) == len(BERTAX_CLASSES):
        return list(BERTAX_CLASSES)
    raise ConversionError(
        f"{keras.path}: output layers {outputs} are not named '{{rank}}{OUT_SUFFIX}'"
    )


def _head_inputs(keras: KerasFile, layer: str, earlier: list[str]) -> list[str]:
    """Layers whose outputs feed `layer`, in concatenation order (BERTax's order by default)."""
    item = _layer_config(keras, layer)
    try:
        source = _text(item["inbound_nodes"][0][0][0]) if item else None
    except (KeyError, IndexError, TypeError):
        source = None
    if source is None:
        return [*earlier, POOLER]
    concat = _layer_config(keras, source)
    if concat is None or concat.get("class_name") != "Concatenate":
        return [source]
    return [_text(node[0]) for node in concat["inbound_nodes"][0]]


def _head_state(
    keras: KerasFile, outputs: list[str], hidden: int
) -> Iterator[tuple[str, str, np.ndarray]]:
    """All-in-one head: keras kernel rows follow the concatenation; hytax wants pooled first."""
    sizes: dict[str, int] = {POOLER: hidden}
    for r, layer in enumerate(outputs):
        kernel, bias = keras.weights(layer, "kernel", "bias")
        inputs = _head_inputs(keras, layer, outputs[:r])
        wanted = [POOLER, *outputs[:r]]
        if sorted(inputs) != sorted(wanted):
            raise ConversionError(
                f"{keras.path}: layer '{layer}' reads {inputs}; an all-in-one BERTax head "
                f"reads {wanted}"
            )
        starts = np.cumsum([0] + [sizes[i] for i in inputs])
        rows = {name: kernel[starts[j] : starts[j + 1]] for j, name in enumerate(inputs)}
        if starts[-1] != kernel.shape[0]:
            raise ConversionError(
                f"{keras.path}: layer '{layer}' kernel has {kernel.shape[0]} inputs, "
                f"expected {starts[-1]} ({' + '.join(inputs)})"
            )
        yield layer, f"head.out.{r}.weight", np.concatenate([rows[n] for n in wanted]).T
        yield layer, f"head.out.{r}.bias", bias
        sizes[layer] = int(bias.shape[0])


def _load_state(model: BertTax, entries: list[tuple[str, str, np.ndarray]], path: Path) -> None:
    target = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for layer, name, value in entries:
        expected = tuple(target[name].shape)
        if tuple(value.shape) != expected:
            raise ConversionError(
                f"{path}: layer '{layer}': shape {tuple(value.shape)} for {name}, "
                f"expected {expected}"
            )
        state[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    buffers = {k: v for k, v in target.items() if k not in state and k.startswith("head.parent_")}
    model.load_state_dict({**state, **buffers}, strict=True)


# --- classes --------------------------------------------------------------------------------------


def _load_class_names(
    classes: str | Path | Mapping[str, list[str]] | None, ranks: list[str], sizes: list[int]
) -> dict[str, list[str]]:
    if classes is None:
        if ranks == list(BERTAX_CLASSES) and sizes == [len(v) for v in BERTAX_CLASSES.values()]:
            return {r: list(v) for r, v in BERTAX_CLASSES.items()}
        shape = ", ".join(f"{r}: {n}" for r, n in zip(ranks, sizes, strict=True))
        raise ConversionError(
            f"the model's outputs ({shape}) "
            "are not the published BERTax classes; give the class names (--classes JSON)"
        )
    if isinstance(classes, Mapping):
        names, source = dict(classes), "classes"
    else:
        source = str(classes)
        try:
            names = json.loads(Path(classes).read_text())
        except (OSError, ValueError) as exc:
            raise ConversionError(f"{classes}: cannot read class names: {exc}") from None
    for rank, n in zip(ranks, sizes, strict=True):
        got = names.get(rank) if isinstance(names, dict) else None
        if not isinstance(got, list) or len(got) != n:
            count = len(got) if isinstance(got, list) else "no"
            raise ConversionError(
                f"{source}: rank '{rank}' needs {n} class names (the model's output), has {count}"
            )
    return {r: [str(x) for x in names[r]] for r in ranks}


_NAME_CLASSES = frozenset({"scientific name", "synonym", "equivalent name", "genbank synonym"})


def _rank_ok(tax: Taxonomy, taxid: int, rank: str) -> bool:
    return tax.rank(taxid) in RANK_ALIASES.get(rank, frozenset({rank}))


def _names_file(taxdump: Path) -> Path | None:
    """names.dmp of a taxdump folder (plain or gzipped) or of an MMseqs2 seqTaxDB prefix."""
    for candidate in (
        taxdump / "names.dmp",
        taxdump / "names.dmp.gz",
        taxdump.parent / f"{taxdump.name}_names.dmp",
    ):
        if candidate.is_file():
            return candidate
    return None


def _scan_names(taxdump: Path, wanted: set[str]) -> dict[str, set[int]]:
    """Taxids carrying each wanted name as scientific name or synonym (homonyms included)."""
    path = _names_file(taxdump)
    found: dict[str, set[int]] = {}
    if path is None or not wanted:
        return found
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split("\t|\t")
            if (
                len(parts) >= 4
                and parts[1] in wanted
                and parts[3].rstrip("\t|\r\n") in _NAME_CLASSES
            ):
                found.setdefault(parts[1], set()).add(int(parts[0]))
    return found


@dataclass
class _Resolver:
    """Class name -> taxid: the unique scientific name if its rank fits, else (one scan of
    names.dmp) the one taxon of the right rank carrying the name as scientific name or synonym,
    preferring one below a class of the rank above. Renamed phyla (Proteobacteria ->
    Pseudomonadota) and homonyms (Bacteria, the stick-insect genus) resolve this way."""

    tax: Taxonomy
    taxdump: Path
    scanned: dict[str, set[int]] | None = None

    def candidates(self, name: str, rank: str, pending: set[str]) -> set[int]:
        try:
            taxid = self.tax.taxid_of(name)
            if _rank_ok(self.tax, taxid, rank):
                return {taxid}
        except TaxonomyError:
            pass
        if self.scanned is None:
            self.scanned = _scan_names(self.taxdump, pending)
        out: set[int] = set()
        for taxid in self.scanned.get(name, set()):
            try:
                out.add(self.tax.resolve(taxid))
            except TaxonomyError:
                continue
        return {t for t in out if _rank_ok(self.tax, t, rank)}

    def taxid(
        self, name: str, rank: str, above: tuple[str, set[int]] | None, pending: set[str]
    ) -> int:
        found = self.candidates(name, rank, pending)
        if len(found) > 1 and above is not None:
            rank_above, parents = above
            below = {t for t in found if self.tax.ranks(t, [rank_above])[rank_above] in parents}
            found = below or found
        return found.pop() if len(found) == 1 else 0


def build_classes(
    names: dict[str, list[str]], taxdump: str | Path | None
) -> tuple[dict[str, list[dict]], list[str]]:
    """hytax class lists ({name, taxid, parent}) and the names not found in the taxdump."""
    ranks = list(names)
    resolver = _Resolver(Taxonomy.load(taxdump), Path(taxdump)) if taxdump is not None else None
    pending = {n for rank_names in names.values() for n in rank_names if n != UNKNOWN}
    missing: list[str] = []
    classes: dict[str, list[dict]] = {}
    for r, rank in enumerate(ranks):
        above = classes[ranks[r - 1]] if r else []
        context = (ranks[r - 1], {c["taxid"] for c in above} - {0}) if r else None
        rows = []
        for name in names[rank]:
            taxid = 0
            if resolver is not None and name != UNKNOWN:
                taxid = resolver.taxid(name, rank, context, pending)
                if taxid == 0:
                    missing.append(f"{rank} '{name}'")
            tax = resolver.tax if resolver is not None else None
            parent = _parent_index(tax, taxid, ranks[r - 1], above) if r else 0
            rows.append({"name": name, "taxid": taxid, "parent": parent})
        classes[rank] = rows
    return classes, missing


def _parent_index(tax: Taxonomy | None, taxid: int, rank_above: str, above: list[dict]) -> int:
    """Index of the class above that is an ancestor of `taxid`; else `unknown` (or 0)."""
    fallback = next((i for i, c in enumerate(above) if c["name"] == UNKNOWN), 0)
    if tax is None or taxid == 0:
        return fallback
    ancestor = tax.ranks(taxid, [rank_above])[rank_above]
    return next((i for i, c in enumerate(above) if ancestor and c["taxid"] == ancestor), fallback)


# --- the conversion -------------------------------------------------------------------------------


def convert_bertax(
    h5_path: str | Path,
    outdir: str | Path,
    taxdump: str | Path | None = None,
    classes: str | Path | Mapping[str, list[str]] | None = None,
    heads: int | None = None,
) -> ModelBundle:
    """Convert a BERTax keras .h5 model into a hytax model directory; return the bundle."""
    keras = read_keras_h5(h5_path)
    arch = infer_architecture(keras, heads)
    outputs = output_layers(keras)
    ranks = _ranks(keras, outputs)
    sizes = [int(keras.weights(o, "bias")[0].shape[0]) for o in outputs]
    class_lists, missing = build_classes(_load_class_names(classes, ranks, sizes), taxdump)
    if missing:
        warnings.warn(
            f"{len(missing)} class names not found (or ambiguous) in the taxdump {taxdump}, "
            "given taxid 0: "
            + ", ".join(missing),
            ConversionWarning,
            stacklevel=2,
        )
    model = BertTax(arch, head_config("all_in_one", ranks, class_lists))
    entries = [*_encoder_state(keras, arch.layers), *_head_state(keras, outputs, arch.hidden)]
    _load_state(model, entries, keras.path)
    model.eval()
    config = _bundle_config(keras, ranks, class_lists, taxdump, missing)
    bundle = ModelBundle(model, config)
    save_model(bundle, outdir)
    return bundle


def _bundle_config(
    keras: KerasFile,
    ranks: list[str],
    classes: dict[str, list[dict]],
    taxdump: str | Path | None,
    missing: list[str],
) -> dict:
    return {
        "name": keras.path.stem,
        "description": "original BERTax model converted from keras-bert (hytax convert-bertax)",
        "head": {"kind": "all_in_one", "ranks": ranks},
        "classes": classes,
        "vocab": list(VOCAB),
        "window_nt": WINDOW_NT,
        "taxonomy": {
            "source": Path(taxdump).name if taxdump is not None else None,
            "unresolved": missing,
        },
        "converted_from": {
            "file": keras.path.name,
            "keras_version": keras.keras_version,
            "layers": len(keras.layer_order),
        },
    }

