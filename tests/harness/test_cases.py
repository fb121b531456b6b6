"""Case: canonical params, stable ids, validation, and tensors that depend on the seed alone."""

import dataclasses
import hashlib
import json
import shlex
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.search.cases import Case, dtype_name
from harness.search.distributions import DISTRIBUTION_NAMES, FP16_SAFE_MAX

BASE = Case(
    batch=2,
    hq=4,
    hkv=2,
    nq=17,
    nk=33,
    head_dim=32,
    dtype="float16",
    causal=True,
    sm_scale=0.3,
    distribution="channel_outliers",
    seed=12345,
)


def test_params_round_trip_and_are_canonical():
    p = BASE.params()
    assert list(p) == sorted(p)
    assert Case.from_params(p) == BASE
    assert Case.from_json(BASE.to_json()) == BASE
    assert json.loads(BASE.to_json()) == p


def test_case_id_is_sha256_of_canonical_json_and_includes_seed():
    expected = hashlib.sha256(json.dumps(BASE.params(), sort_keys=True, separators=(",", ":")).encode())
    assert BASE.case_id == expected.hexdigest()[:16]
    assert dataclasses.replace(BASE, seed=12346).case_id != BASE.case_id


def test_case_id_is_the_same_in_another_process():
    code = f"from harness.search.cases import Case; print(Case.from_json({BASE.to_json()!r}).case_id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == BASE.case_id


def test_integral_sm_scale_is_stored_as_float():
    a = dataclasses.replace(BASE, sm_scale=1)
    b = dataclasses.replace(BASE, sm_scale=1.0)
    assert a.case_id == b.case_id and isinstance(a.sm_scale, float)


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"hq": 3}, "multiple of hkv"),
        ({"nq": 0}, "'nq'"),
        ({"batch": True}, "'batch'"),
        ({"dtype": "float32"}, "'dtype'"),
        ({"distribution": "nope"}, "'distribution'"),
        ({"sm_scale": -1.0}, "'sm_scale'"),
        ({"causal": 1}, "'causal'"),
        ({"seed": -1}, "'seed'"),
    ],
)
def test_bad_fields_raise_value_error_naming_them(change, needle):
    with pytest.raises(ValueError, match=needle):
        Case.from_params({**BASE.params(), **change})


def test_missing_and_extra_fields_are_rejected():
    p = BASE.params()
    del p["seed"]
    with pytest.raises(ValueError, match="missing"):
        Case.from_params(p)
    with pytest.raises(ValueError, match="unexpected"):
        Case.from_params({**BASE.params(), "device": "cpu"})
    with pytest.raises(ValueError, match="JSON"):
        Case.from_json("{not json")


def test_family_and_shape_class():
    assert BASE.family == "outliers"
    assert BASE.shape_class == "gqa/nq<nk/causal"
    mqa = dataclasses.replace(BASE, hq=4, hkv=1, nq=40, causal=False)
    assert mqa.shape_class == "mqa/nq>nk/full"
    mha = dataclasses.replace(BASE, hq=2, hkv=2, nq=33)
    assert mha.shape_class == "mha/nq=nk/causal"


def test_repro_command_carries_the_exact_case():
    words = shlex.split(BASE.repro_command("mine=pkg.mod:fn", ["--max-abs", "0.5"]))
    assert words[:4] == ["lowbit", "fuzz", "--kernel", "mine=pkg.mod:fn"]
    assert words[4:6] == ["--max-abs", "0.5"]
    assert words[6] == "--case"
    assert Case.from_json(words[7]) == BASE


def test_dtype_name():
    assert dtype_name(torch.bfloat16) == "bfloat16"
    assert dtype_name("torch.float16") == "float16"
    with pytest.raises(ValueError):
        dtype_name(torch.float32)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    distribution=st.sampled_from(DISTRIBUTION_NAMES),
    dtype=st.sampled_from(["float16", "bfloat16"]),
    seed=st.integers(0, 2**32 - 1),
    nq=st.integers(1, 40),
    nk=st.integers(1, 40),
    hkv=st.integers(1, 2),
    group=st.integers(1, 3),
    head_dim=st.sampled_from([16, 32, 64]),
)
def test_inputs_depend_on_the_seed_only_and_are_finite(
    distribution, dtype, seed, nq, nk, hkv, group, head_dim
):
    case = Case(
        batch=1,
        hq=hkv * group,
        hkv=hkv,
        nq=nq,
        nk=nk,
        head_dim=head_dim,
        dtype=dtype,
        causal=False,
        sm_scale=None,
        distribution=distribution,
        seed=seed,
    )
    q, k, v = case.make_inputs("cpu")
    again = case.make_inputs("cpu")
    for a, b in zip((q, k, v), again, strict=True):
        assert a.dtype == case.torch_dtype
        assert torch.equal(a, b)
        assert torch.isfinite(a.float()).all()
        assert a.float().abs().max() <= FP16_SAFE_MAX * 1.01
    assert q.shape == case.q_shape and k.shape == v.shape == case.kv_shape


def test_layout_is_part_of_the_case_but_a_contiguous_case_keeps_its_old_id():
    assert "layout" not in BASE.params() and BASE.layout == "hnd"
    # The id of a case stored before layouts existed: the hash of its JSON without "layout".
    old = hashlib.sha256(json.dumps(BASE.params(), sort_keys=True, separators=(",", ":")).encode())
    assert BASE.case_id == old.hexdigest()[:16]
    fused = dataclasses.replace(BASE, layout="fused")
    assert fused.params()["layout"] == "fused" and fused.case_id != BASE.case_id
    assert Case.from_json(fused.to_json()) == fused and "layout=fused" in str(fused)
    assert "fused" in fused.repro_command("k")
    with pytest.raises(ValueError, match="layout"):
        Case.from_params({**BASE.params(), "layout": "nhd"})


@pytest.mark.parametrize("layout", ["bnhd", "fused", "kv_cache"])
@pytest.mark.parametrize("nq", [5, 7])
def test_layouts_hold_the_same_values_with_only_the_last_dim_contiguous(layout, nq):
    case = Case(2, 4, 2, nq, 7, 32, "float16", True, None, "gaussian", 1, layout)
    values = case.make_values("cpu")
    (q, k, v), owners = case.lay_out(*values)
    for got, want in zip((q, k, v), values, strict=True):
        assert torch.equal(got, want) and got.stride(-1) == 1
    assert not all(t.is_contiguous() for t in (q, k, v))
    if layout == "kv_cache":
        # The cache's unused tail holds NaN, so a kernel that reads past Nk cannot go unnoticed.
        assert torch.isnan(owners[1][:, :, 7:].float()).all() and owners[1].shape[2] > 7
    if layout == "fused" and nq == 7:
        assert q.untyped_storage().data_ptr() == k.untyped_storage().data_ptr()
