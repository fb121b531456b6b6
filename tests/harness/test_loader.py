"""load_kernel: registry names, module:function, aliases, errors, budgets and source hashes."""

import sys
import textwrap

import pytest

from harness.search.targets import (
    DEFAULT_BUDGETS,
    DEFAULT_DTYPES,
    DEFAULT_HEAD_DIMS,
    KernelLoadError,
    load_kernel,
    registry,
    source_hash,
)


def test_registry_name_uses_the_spec():
    reg = registry()
    name = sorted(reg)[0]
    t = load_kernel(name)
    spec = reg[name]
    assert t.spec is spec and t.fn is spec.fn and t.name == name == t.ref
    assert t.head_dims == tuple(spec.head_dims)
    assert t.budget_for("gaussian", "float16") == spec.budget_for("gaussian", spec.dtypes[0])
    assert len(t.source_hash) == 16


def test_module_function_gets_defaults_and_overrides():
    t = load_kernel("tests.harness.broken_kernels:correct_fp32")
    assert t.spec is None and t.name == "tests.harness.broken_kernels:correct_fp32"
    assert t.head_dims == DEFAULT_HEAD_DIMS and t.dtypes == DEFAULT_DTYPES
    assert t.budget_for("outliers").max_abs == DEFAULT_BUDGETS["outliers"][1]
    t = load_kernel("tests.harness.broken_kernels:correct_fp32", max_rel_l2=0.5)
    assert t.budget_for("outliers").max_rel_l2 == 0.5
    assert t.budget_for("outliers").max_abs == DEFAULT_BUDGETS["outliers"][1]
    assert t.override_args() == ["--max-rel-l2", "0.5"]


def test_alias_keeps_the_name_and_the_ref():
    t = load_kernel("mine=tests.harness.broken_kernels:correct_fp32")
    assert t.name == "mine" and t.ref == "mine=tests.harness.broken_kernels:correct_fp32"


@pytest.mark.parametrize(
    "ref, needle",
    [
        ("no_such_kernel", "unknown kernel 'no_such_kernel'"),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        ("tests.harness.broken_kernels:nothing", "has no attribute 'nothing'"),
        ("tests.harness.broken_kernels:BLOCK_N", "not a callable"),
        ("bad alias=tests.harness.broken_kernels:correct_fp32", "bad alias"),
        ("x=", "nothing after"),
        ("", "empty kernel reference"),
        (":fn", "module:function"),
    ],
)
def test_unusable_references_raise_a_clear_error(ref, needle):
    with pytest.raises(KernelLoadError, match=needle):
        load_kernel(ref)


def test_negative_override_is_rejected():
    with pytest.raises(KernelLoadError, match="non-negative"):
        load_kernel("tests.harness.broken_kernels:correct_fp32", max_abs=-1.0)


def test_a_kernelspec_object_is_used_like_a_registered_one(tmp_path, monkeypatch):
    (tmp_path / "user_spec_mod.py").write_text(
        textwrap.dedent(
            """
            from tests.harness.broken_kernels import int8_spec
            SPEC = int8_spec()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    t = load_kernel("user_spec_mod:SPEC")
    assert t.spec is not None and t.dequantize is not None and t.name == "user_spec_mod:SPEC"
    sys.modules.pop("user_spec_mod", None)


def test_source_hash_follows_the_file_content(tmp_path, monkeypatch):
    path = tmp_path / "user_kernel_mod.py"
    path.write_text("def fn(q, k, v, *, causal=False, sm_scale=None):\n    return q\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = load_kernel("user_kernel_mod:fn").source_hash
    assert first == source_hash(sys.modules["user_kernel_mod"].fn)
    path.write_text("def fn(q, k, v, *, causal=False, sm_scale=None):\n    return q * 1\n")
    sys.modules.pop("user_kernel_mod")
    assert load_kernel("user_kernel_mod:fn").source_hash != first
    sys.modules.pop("user_kernel_mod")
    assert source_hash(len) == ""
