"""BERTax in PyTorch: a BERT encoder over 3-mer tokens, taxonomy heads all-in-one, flat, nested.

Weight names follow the structure below so a keras-bert checkpoint maps onto them by a small table
(see `hytax.convert`). Config options cover the two places where keras-bert differs from the
usual PyTorch BERT (tanh-approximated GELU, layer-norm epsilon).
"""

from __future__ import annotations

import ctypes
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hytax.errors import HytaxError
from hytax.tokenizer import PAD, VOCAB


@dataclass
class BertConfig:
    vocab_size: int = len(VOCAB)
    hidden: int = 250
    layers: int = 12
    heads: int = 5
    intermediate: int = 1024
    dropout: float = 0.05
    max_positions: int = 502
    segments: int = 2
    layer_norm_eps: float = 1e-12
    gelu: str = "none"  # "none" (exact erf) or "tanh" (keras-bert's approximation)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HeadConfig:
    """Taxonomy output: ranks from highest to lowest, the class names of each, and how they nest.

    `parents[r][i]` is the index (in rank r-1's class list) of the parent of class i of rank r;
    the flat head sums lowest-rank probabilities into higher ranks through it and the nested head
    builds one classifier per parent class from it.
    """

    kind: str = "all_in_one"  # all_in_one | flat | nested
    ranks: list[str] = field(default_factory=lambda: ["superkingdom", "phylum", "genus"])
    n_classes: list[int] = field(default_factory=list)
    parents: list[list[int]] = field(default_factory=list)


class Block(nn.Module):
    """Post-layer-norm transformer block, as in BERT and keras-bert."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.hidden, cfg.hidden)
        self.k = nn.Linear(cfg.hidden, cfg.hidden)
        self.v = nn.Linear(cfg.hidden, cfg.hidden)
        self.o = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(cfg.hidden, cfg.intermediate)
        self.ff_out = nn.Linear(cfg.intermediate, cfg.hidden)
        self.ff_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.gelu = cfg.gelu

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cls_only: bool = False
    ) -> torch.Tensor:
        """`cls_only` returns just the [CLS] row ([B,1,H]): all a classifier needs of the last
        block, and it skips most of that block's work (queries, attention rows, feed-forward)."""
        b, _, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, -1, self.heads, d).transpose(1, 2)

        keys = x
        if cls_only:
            x = x[:, :1]
        t = x.shape[1]
        drop = self.dropout.p if self.training else 0.0
        a = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(keys)), split(self.v(keys)), attn_mask=mask,
            dropout_p=drop,
        )
        x = self.attn_norm(x + self.dropout(self.o(a.transpose(1, 2).reshape(b, t, h))))
        f = self.ff_out(F.gelu(self.ff_in(x), approximate=self.gelu))
        return self.ff_norm(x + self.dropout(f))


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.segment = nn.Embedding(cfg.segments, cfg.hidden)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.embed_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.pooler = nn.Linear(cfg.hidden, cfg.hidden)
        self.apply(_init_weights)

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor | None = None, cls_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (sequence output [B,T,H], pooled [CLS] output [B,H]); [PAD] is never attended.
        With `cls_only` the sequence output is the [CLS] row alone ([B,1,H])."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        x = x + (self.segment(segments) if segments is not None else self.segment.weight[0])
        # keras-bert order: dropout, then Embedding-Norm (identical to norm-then-dropout at eval).
        x = self.embed_norm(self.dropout(x))
        keep = tokens != PAD
        mask = None if bool(keep.all()) else keep[:, None, None, :]
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cls_only=cls_only and i == last)
        return x, torch.tanh(self.pooler(x[:, 0]))


class TaxonomyHead(nn.Module):
    """Log-probabilities per rank from the pooled [CLS] vector."""

    def __init__(self, hidden: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_classes
        if cfg.kind == "all_in_one":
            # Each lower rank also sees the probabilities of every higher rank (paper, Fig. 4C).
            self.out = nn.ModuleList(nn.Linear(hidden + sum(n[:r]), n[r]) for r in range(len(n)))
        elif cfg.kind == "flat":
            self.out = nn.ModuleList([nn.Linear(hidden, n[-1])])
        elif cfg.kind == "nested":
            self.out = nn.ModuleList([nn.Linear(hidden, n[0])])
            self.nested = nn.ModuleList(
                nn.ModuleList(
                    nn.Linear(hidden, max(1, sum(1 for p in cfg.parents[r] if p == parent)))
                    for parent in range(n[r - 1])
                )
                for r in range(1, len(n))
            )
        else:
            raise ValueError(f"unknown head kind '{cfg.kind}' (all_in_one, flat or nested)")
        for r in range(1, len(n)):
            self.register_buffer(f"parent_{r}", torch.tensor(cfg.parents[r], dtype=torch.long))

    def _parent(self, r: int) -> torch.Tensor:
        return getattr(self, f"parent_{r}")

    def forward(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        if self.cfg.kind == "all_in_one":
            logps: list[torch.Tensor] = []
            for layer in self.out:
                inputs = torch.cat([pooled, *(lp.exp() for lp in logps)], dim=-1)
                logps.append(F.log_softmax(layer(inputs).float(), dim=-1))
            return logps
        if self.cfg.kind == "flat":
            logps = [F.log_softmax(self.out[0](pooled).float(), dim=-1)]
            for r in range(len(self.cfg.n_classes) - 1, 0, -1):
                parent = self._parent(r)
                probs = logps[0].exp()
                up = probs.new_zeros(probs.shape[0], self.cfg.n_classes[r - 1])
                up.index_add_(1, parent, probs)
                logps.insert(0, up.clamp_min(1e-12).log())
            return logps
        return self._nested(pooled)

    def _nested(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        logps = [F.log_softmax(self.out[0](pooled).float(), dim=-1)]
        for r, per_parent in enumerate(self.nested, start=1):
            parent = self._parent(r)
            child = pooled.new_full((pooled.shape[0], self.cfg.n_classes[r]), -1e4).float()
            for p, layer in enumerate(per_parent):
                members = (parent == p).nonzero().squeeze(1)
                if members.numel():
                    within = F.log_softmax(layer(pooled).float(), dim=-1)[:, : members.numel()]
                    child[:, members] = within + logps[r - 1][:, p : p + 1]
            logps.append(child)
        return logps


class BertTax(nn.Module):
    """Encoder plus taxonomy head: tokens [B,T] -> log-probabilities per rank."""

    def __init__(self, bert: BertConfig, head: HeadConfig) -> None:
        super().__init__()
        self.bert_config = bert
        self.head_config = head
        self.encoder = BertEncoder(bert)
        self.head = TaxonomyHead(bert.hidden, head)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.encoder(tokens, cls_only=True)[1])


class BertPretraining(nn.Module):
    """Masked 3-mer model (decoder tied to the token embedding) plus next-sentence prediction."""

    def __init__(self, bert: BertConfig) -> None:
        super().__init__()
        self.encoder = BertEncoder(bert)
        self.mlm_dense = nn.Linear(bert.hidden, bert.hidden)
        self.mlm_norm = nn.LayerNorm(bert.hidden, eps=bert.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(bert.vocab_size))
        self.nsp = nn.Linear(bert.hidden, 2)
        self.gelu = bert.gelu

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        seq, pooled = self.encoder(tokens, segments)
        h = self.mlm_norm(F.gelu(self.mlm_dense(seq), approximate=self.gelu))
        mlm_logits = h @ self.encoder.token.weight.T + self.mlm_bias
        return mlm_logits, self.nsp(pooled)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_flops(cfg: BertConfig, tokens: int) -> float:
    """Approximate forward FLOPs for one sequence (for benchmark reports)."""
    dense = 2 * tokens * (4 * cfg.hidden**2 + 2 * cfg.hidden * cfg.intermediate)
    attn = 4 * tokens**2 * cfg.hidden
    return cfg.layers * (dense + attn)


def keep_freed_cpu_memory() -> None:
    """Let glibc keep freed tensor buffers for reuse instead of unmapping them.

    By default every allocation above 32 MB is a fresh mmap, so each batch's activations (a
    1500-nt batch's feed-forward output is ~65 MB) arrive as new pages, and the page faults cost
    about a quarter of CPU prediction time (benchmarks/predict_throughput.py). Outside glibc this
    does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


# --- model files: safetensors weights + JSON config (never pickle) -----------------------------

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "hytax-bertax"


@dataclass
class ModelBundle:
    """A model with what using it needs: class lists, window, calibration, provenance."""

    model: BertTax
    config: dict

    @property
    def ranks(self) -> list[str]:
        return self.config["head"]["ranks"]

    def classes(self, rank: str) -> list[dict]:
        """[{"name", "taxid", "parent"}, ...] in output order; `parent` indexes the rank above."""
        return self.config["classes"][rank]

    @property
    def window_nt(self) -> int:
        return int(self.config.get("window_nt", 1500))

    def temperature(self, rank: str) -> float:
        return float(self.config.get("calibration", {}).get("temperature", {}).get(rank, 1.0))

    def abstain(self, rank: str) -> dict | None:
        """This rank's abstention thresholds (calibration.abstain; None: never abstain)."""
        per_rank = self.config.get("calibration", {}).get("abstain", {}).get("per_rank", {})
        return per_rank.get(rank)


def head_config(kind: str, ranks: list[str], classes: dict[str, list[dict]]) -> HeadConfig:
    parents = [[0] * len(classes[ranks[0]])]
    parents += [[int(c["parent"]) for c in classes[r]] for r in ranks[1:]]
    return HeadConfig(kind, list(ranks), [len(classes[r]) for r in ranks], parents)


def build_model(config: dict) -> BertTax:
    bert = BertConfig(**config["architecture"])
    head = head_config(config["head"]["kind"], config["head"]["ranks"], config["classes"])
    return BertTax(bert, head)


def save_model(bundle: ModelBundle, outdir: str | Path) -> None:
    from safetensors.torch import save_file

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in bundle.model.state_dict().items()}
    save_file(state, outdir / WEIGHTS_NAME, metadata={"format": FORMAT})
    config = {**bundle.config, "format": FORMAT, "architecture": bundle.model.bert_config.to_dict()}
    (outdir / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


class ModelFileError(HytaxError):
    """A model folder missing a file, holding a broken one, or not matching its config."""


# safetensors dtypes and their sizes in bytes, to check that each tensor fills its byte range
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
# a header larger than this is not a header: random bytes read as a length
_MAX_HEADER_BYTES = 100_000_000
HEAD_KINDS = ("all_in_one", "flat", "nested")


def read_model_config(model_dir: str | Path) -> dict:
    """config.json of a model folder, checked for everything building the model reads."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFileError(f"{model_dir}: no such model folder")
    path = model_dir / CONFIG_NAME
    if not path.is_file():
        raise ModelFileError(
            f"{model_dir}: missing {CONFIG_NAME} (a model folder holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    problem = _config_problem(config)
    if problem:
        raise ModelFileError(f"{path}: {problem}")
    return config


def _config_problem(config: object) -> str | None:
    """What makes a parsed config unusable, or None."""
    if not isinstance(config, dict):
        return "expected a JSON object"
    if config.get("format") != FORMAT:
        return f"'format' is {config.get('format')!r}, not {FORMAT!r}: not a hytax model config"
    missing = [key for key in ("architecture", "head", "classes") if key not in config]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)}"
    return _architecture_problem(
        config["architecture"], config.get("window_nt", 1500)
    ) or _head_problem(config["head"], config["classes"])


def _architecture_problem(arch: object, window_nt: object) -> str | None:
    if not isinstance(arch, dict):
        return "'architecture' is not an object"
    defaults = BertConfig().to_dict()
    unknown = sorted(set(arch) - set(defaults))
    if unknown:
        return f"'architecture' has unknown keys {unknown} (known: {sorted(defaults)})"
    merged = {**defaults, **arch}
    for key, default in defaults.items():
        value = merged[key]
        if isinstance(default, str):
            ok = value in ("none", "tanh")
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        if not ok:
            return f"'architecture.{key}' is {value!r}, not a valid value"
    if merged["hidden"] % merged["heads"]:
        hidden, heads = merged["hidden"], merged["heads"]
        return f"'architecture.hidden' {hidden} is not a multiple of 'heads' {heads}"
    if merged["vocab_size"] != len(VOCAB):
        return (
            f"'architecture.vocab_size' is {merged['vocab_size']}, "
            f"the 3-mer vocabulary has {len(VOCAB)}"
        )
    if not isinstance(window_nt, int) or isinstance(window_nt, bool) or window_nt < 3:
        return f"'window_nt' is {window_nt!r}, not a window length in nt"
    if 1 + window_nt // 3 > merged["max_positions"]:
        return (
            f"'window_nt' {window_nt} needs {1 + window_nt // 3} positions, "
            f"'architecture.max_positions' is {merged['max_positions']}"
        )
    return None


def _head_problem(head: object, classes: object) -> str | None:
    if not isinstance(head, dict) or head.get("kind") not in HEAD_KINDS:
        return f"'head.kind' must be one of {', '.join(HEAD_KINDS)}"
    ranks = head.get("ranks")
    if not isinstance(ranks, list) or not ranks or not all(isinstance(r, str) for r in ranks):
        return "'head.ranks' must be a non-empty list of rank names"
    if not isinstance(classes, dict):
        return "'classes' is not an object"
    for r, rank in enumerate(ranks):
        listed = classes.get(rank)
        if not isinstance(listed, list) or not listed:
            return f"'classes' has no class list for rank '{rank}'"
        above = len(classes[ranks[r - 1]]) if r else 1
        for i, cls in enumerate(listed):
            if not (
                isinstance(cls, dict)
                and isinstance(cls.get("name"), str)
                and isinstance(cls.get("taxid"), int)
            ):
                return f"'classes.{rank}[{i}]' needs a 'name' (text) and a 'taxid' (integer)"
            parent = cls.get("parent", 0)
            if r and not (isinstance(parent, int) and 0 <= parent < above):
                return (
                    f"'classes.{rank}[{i}].parent' is {parent!r}, not an index into the "
                    f"{above} classes of '{ranks[r - 1]}'"
                )
    return None


def read_weights_header(path: str | Path) -> dict[str, dict]:
    """Tensor name -> {dtype, shape, data_offsets} from a safetensors file, after checking that
    the header parses and that the tensors fill the file exactly (so a truncated or padded file,
    or random bytes, are caught before any weight is read)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path.parent}: missing {path.name} (a model folder holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise ModelFileError(f"{path}: {size} bytes, too short for a safetensors file")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise ModelFileError(
                f"{path}: not a safetensors file (its first 8 bytes give a header of "
                f"{length} bytes, the file has {size})"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: safetensors header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    end = 0
    for name, entry in header.items():
        problem = _tensor_entry_problem(entry)
        if problem:
            raise ModelFileError(f"{path}: tensor '{name}': {problem}")
        end = max(end, entry["data_offsets"][1])
    if end != data_bytes:
        raise ModelFileError(
            f"{path}: the tensors end at byte {end} of the data but the file holds "
            f"{data_bytes} bytes after the header: "
            + (
                "truncated (an incomplete copy or download?)"
                if end > data_bytes
                else "extra bytes at the end"
            )
        )
    return header


def _tensor_entry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return "not an object"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        return f"unknown dtype {dtype!r}"
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        return f"shape {shape!r} is not a list of sizes"
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        return f"data_offsets {offsets!r} are not a byte range"
    if offsets[1] - offsets[0] != _DTYPE_BYTES[dtype] * math.prod(shape):
        return (
            f"{offsets[1] - offsets[0]} bytes for a {dtype} tensor of shape {shape} "
            f"({_DTYPE_BYTES[dtype] * math.prod(shape)} expected)"
        )
    return None


def expected_tensors(config: dict) -> dict[str, list[int]]:
    """Name -> shape of every tensor a model with this config holds (nothing allocated)."""
    with torch.device("meta"):
        model = build_model(config)
    return {name: list(t.shape) for name, t in model.state_dict().items()}


def check_weights(
    weights_path: Path, header: dict[str, dict], expected: dict[str, list[int]], config_path: Path
) -> None:
    """The file's tensors must be exactly the model's: same names, same shapes."""
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    wrong = [
        f"{name} {header[name]['shape']} (config: {shape})"
        for name, shape in expected.items()
        if name in header and header[name]["shape"] != shape
    ]
    problems = []
    for label, names in (
        ("missing", missing),
        ("not in the model", unexpected),
        ("with another shape", wrong),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            problems.append(f"{len(names)} tensor(s) {label}: {shown}")
    if problems:
        raise ModelFileError(
            f"{weights_path}: weights do not match {config_path}: " + "; ".join(problems)
        )


def check_model(model_dir: str | Path) -> dict:
    """Everything about a model folder that can be checked without reading the weights: the
    config, the safetensors header and the tensors' names and shapes. Returns the config."""
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    weights_path = model_dir / WEIGHTS_NAME
    header = read_weights_header(weights_path)
    check_weights(weights_path, header, expected_tensors(config), model_dir / CONFIG_NAME)
    return config


def load_model(model_dir: str | Path) -> ModelBundle:
    """A model folder as a ready model; any problem with its files is one ModelFileError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    config = check_model(model_dir)
    weights_path = model_dir / WEIGHTS_NAME
    model = build_model(config)
    try:
        model.load_state_dict(load_file(weights_path))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"{weights_path}: unreadable weights ({exc})") from None
    model.eval()
    return ModelBundle(model, config)
