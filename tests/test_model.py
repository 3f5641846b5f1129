"""The BERT encoder and the three taxonomy heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from hytax.model import ModelFileError, build_model, load_model
from hytax.tokenizer import PAD, encode


def _tokens(seqs: list[str]) -> torch.Tensor:
    ids = [encode(s) for s in seqs]
    out = torch.full((len(ids), max(len(i) for i in ids)), PAD, dtype=torch.long)
    for row, i in enumerate(ids):
        out[row, : len(i)] = torch.from_numpy(i)
    return out


@pytest.mark.parametrize("kind", ["all_in_one", "flat", "nested"])
def test_heads_give_distributions_per_rank(kind: str, ecoli: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(kind)).eval()
    logps = model(_tokens([ecoli[:1500], ecoli[2000:2150]]))
    assert [lp.shape for lp in logps] == [(2, 3)] * 3
    for lp in logps:
        assert torch.allclose(lp.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_flat_head_sums_children_into_parents(ecoli: str) -> None:
    torch.manual_seed(0)
    sk, ph, ge = (
        lp.exp() for lp in build_model(tiny_config("flat")).eval()(_tokens([ecoli[:300]]))
    )
    # Each genus has its own phylum and superkingdom here, so the parents carry its probability.
    assert torch.allclose(ph, ge, atol=1e-6) and torch.allclose(sk, ge, atol=1e-6)


def test_nested_head_never_exceeds_parent_probability(ecoli: str) -> None:
    torch.manual_seed(0)
    sk, ph, _ = (
        lp.exp() for lp in build_model(tiny_config("nested")).eval()(_tokens([ecoli[:300]]))
    )
    assert (ph <= sk + 1e-6).all()


def test_padding_does_not_change_a_result(ecoli: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    short, long = ecoli[:150], ecoli[5000:6500]
    with torch.inference_mode():
        alone = model(_tokens([short]))
        padded = model(_tokens([long, short]))
    for a, p in zip(alone, padded, strict=True):
        assert torch.allclose(a[0], p[1], atol=1e-5)


def test_cls_only_last_block_matches_the_full_encoder(ecoli: str) -> None:
    """Classification computes only the [CLS] row of the last block; it must be the same row."""
    torch.manual_seed(0)
    encoder = build_model(tiny_config()).eval().encoder
    tokens = _tokens([ecoli[5000:6500], ecoli[:150]])
    with torch.inference_mode():
        full_seq, full_pooled = encoder(tokens)
        cls_seq, cls_pooled = encoder(tokens, cls_only=True)
    assert cls_seq.shape == (2, 1, full_seq.shape[2])
    assert torch.allclose(cls_seq[:, 0], full_seq[:, 0], atol=1e-5)
    assert torch.allclose(cls_pooled, full_pooled, atol=1e-5)


def test_all_in_one_feeds_higher_rank_probabilities_down(ecoli: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    logps = model(_tokens([ecoli[:600]]))
    sk_layer, genus_layer = model.head.out[0], model.head.out[2]
    grads = torch.autograd.grad(logps[2][0, 0], sk_layer.weight, retain_graph=True)[0]
    assert grads.abs().sum() > 0, "genus output must depend on the superkingdom layer"
    assert genus_layer.in_features == 32 + 3 + 3
    untouched = torch.autograd.grad(logps[0][0, 0], genus_layer.weight, allow_unused=True)[0]
    assert untouched is None, "superkingdom must not depend on the genus layer"


def test_save_load_identical_and_errors(tiny_model_dir: Path, tmp_path: Path, ecoli: str) -> None:
    bundle = load_model(tiny_model_dir)
    again = load_model(tiny_model_dir)
    x = _tokens([ecoli[:1500], ecoli[:150]])
    with torch.inference_mode():
        for a, b in zip(bundle.model(x), again.model(x), strict=True):
            assert torch.equal(a, b)
    assert bundle.classes("genus")[0]["taxid"] == 561
    with pytest.raises(ModelFileError, match=r"missing config.json"):
        load_model(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["architecture"]["hidden"] = 48
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"do not match"):
        load_model(broken)
