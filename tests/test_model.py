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


# --- broken model folders: one clear error naming the file, never a traceback --------------------


def _copy_model(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("config.json", "model.safetensors"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _edit_config(model: Path, edit) -> None:
    config = json.loads((model / "config.json").read_text())
    edit(config)
    (model / "config.json").write_text(json.dumps(config))


BROKEN_WEIGHTS = {
    "truncated": (
        lambda b: b[: len(b) - 1000],
        r"the tensors end at byte \d+ of the data but the file holds \d+ .*truncated",
    ),
    "cut in the header": (lambda b: b[:200], r"not a safetensors file \(its first 8 bytes"),
    "random bytes": (lambda b: bytes(range(256)) * 40, r"not a safetensors file"),
    "empty": (lambda b: b"", r"0 bytes, too short for a safetensors file"),
    "extra bytes": (lambda b: b + b"\0" * 64, r"the tensors end .* extra bytes at the end"),
    "header not JSON": (
        lambda b: (
            b[:8]
            + b"{" * int.from_bytes(b[:8], "little")
            + b[8 + int.from_bytes(b[:8], "little") :]
        ),
        r"safetensors header is not valid JSON",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_WEIGHTS))
def test_broken_weights_are_one_clear_error(
    tiny_model_dir: Path, tmp_path: Path, case: str
) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    damage, message = BROKEN_WEIGHTS[case]
    weights = model / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ModelFileError, match=f"^{weights}: {message}"):
        load_model(model)


BROKEN_CONFIGS = {
    "not JSON": (lambda c: '{"format": "hytax-bertax",', r"not valid JSON \(.*line 1"),
    "a list": (lambda c: [c], r"expected a JSON object"),
    "no format": (lambda c: {k: v for k, v in c.items() if k != "format"}, r"'format' is None"),
    "no classes": (lambda c: {k: v for k, v in c.items() if k != "classes"}, r"no 'classes'"),
    "unknown architecture key": (
        lambda c: {**c, "architecture": {**c["architecture"], "hiden": 32}},
        r"'architecture' has unknown keys \['hiden'\]",
    ),
    "heads do not divide": (
        lambda c: {**c, "architecture": {**c["architecture"], "heads": 5}},
        r"'architecture.hidden' 32 is not a multiple of 'heads' 5",
    ),
    "window too long": (
        lambda c: {**c, "window_nt": 3000},
        r"'window_nt' 3000 needs 1001 positions, 'architecture.max_positions' is 502",
    ),
    "bad head kind": (lambda c: {**c, "head": {**c["head"], "kind": "deep"}}, r"'head.kind'"),
    "rank without classes": (
        lambda c: {**c, "classes": {k: v for k, v in c["classes"].items() if k != "genus"}},
        r"'classes' has no class list for rank 'genus'",
    ),
    "parent out of range": (
        lambda c: {
            **c,
            "classes": {**c["classes"], "genus": [{"name": "x", "taxid": 1, "parent": 7}]},
        },
        r"'classes.genus\[0\].parent' is 7, not an index into the 3 classes of 'phylum'",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_CONFIGS))
def test_broken_config_is_one_clear_error(tiny_model_dir: Path, tmp_path: Path, case: str) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    damage, message = BROKEN_CONFIGS[case]
    config = damage(json.loads((model / "config.json").read_text()))
    text = config if isinstance(config, str) else json.dumps(config)
    (model / "config.json").write_text(text)
    with pytest.raises(ModelFileError, match=f"^{model / 'config.json'}: {message}"):
        load_model(model)


def test_folder_without_a_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=f"^{tmp_path / 'nothing'}: no such model folder"):
        load_model(tmp_path / "nothing")
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    (model / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match=f"^{model}: missing model.safetensors"):
        load_model(model)


def test_weights_of_another_model_name_the_tensors(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    _edit_config(model, lambda c: c["architecture"].update(layers=3))
    with pytest.raises(ModelFileError, match=r"16 tensor\(s\) missing: encoder\.blocks\.2\."):
        load_model(model)


def test_check_model_command(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hytax.cli import main

    assert main(["check-model", "--model", str(tiny_model_dir)]) == 0
    assert "ok (2 blocks, hidden 32, all_in_one head: 3 superkingdom" in capsys.readouterr().out
    model = _copy_model(tiny_model_dir, tmp_path / "m")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    assert main(["check-model", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hytax check-model: error: {weights}: the tensors end at byte")
    assert "Traceback" not in err
