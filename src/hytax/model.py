"""BERTax in PyTorch: a BERT encoder over 3-mer tokens, taxonomy heads all-in-one, flat, nested.

Weight names follow the structure below so a keras-bert checkpoint maps onto them by a small table
(see `hytax.convert`). Config options cover the two places where keras-bert differs from the
usual PyTorch BERT (tanh-approximated GELU, layer-norm epsilon).
"""

from __future__ import annotations

import ctypes
import json
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
    """A model directory that is missing files or does not match its config."""


def load_model(model_dir: str | Path) -> ModelBundle:
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    config_path, weights_path = model_dir / CONFIG_NAME, model_dir / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelFileError(f"{model_dir}: missing {path.name}")
    config = json.loads(config_path.read_text())
    if config.get("format") != FORMAT:
        raise ModelFileError(f"{config_path}: not a {FORMAT} model config")
    model = build_model(config)
    try:
        model.load_state_dict(load_file(weights_path))
    except RuntimeError as exc:
        raise ModelFileError(f"{weights_path}: weights do not match {config_path}: {exc}") from None
    model.eval()
    return ModelBundle(model, config)
