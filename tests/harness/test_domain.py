"""Domain learning: probing a kernel's refusals, stating a domain, and spending the search inside it."""

import json

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.search.cases import LAYOUTS, Case
from harness.search.domain import Domain, DomainError, probe_domain
from harness.search.profiles import size_limits
from harness.search.targets import target_from_callable
from tests.conftest import DEVICE
from tests.harness import broken_kernels as bk

# The CLI test fuzzes on this session's device (the kernels are already imported for it) at the
# interpreter's ci lengths (on a GPU, no 2^31-offset cases: they are not what it tests).
CPU_CI_MAX_N = str(size_limits("ci", "cpu").max_n)


def test_probing_a_narrow_kernel_finds_its_domain():
    probe = probe_domain(target_from_callable(bk.narrow_domain, name="narrow"), "cpu")
    assert not probe.note
    d = probe.domain
    assert d.head_dims == (64, 128) and d.dtypes == ("float16",) and d.heads == ("mha",)
    assert d.same_length and d.length_multiple == 64 and d.causal == (False, True) and d.layouts == LAYOUTS
    refused = {row["axis"] for row in probe.rows if not row["accepted"]}
    assert {"head_dims", "dtypes", "heads", "nq != nk", "length multiple"} <= refused
    assert probe.calls == len(probe.rows) < 40


def test_a_general_kernel_is_unrestricted_and_stated_axes_are_not_probed():
    probe = probe_domain(target_from_callable(bk.correct_fp32, name="c"), "cpu", stated={"head_dims": [64]})
    assert probe.domain == Domain(head_dims=(64,))
    assert all(row["axis"] != "head_dims" for row in probe.rows)


def test_a_kernel_refusing_everything_keeps_the_unrestricted_domain_with_a_note():
    def refuses(q, k, v, **kw):
        raise NotImplementedError("nothing")

    probe = probe_domain(target_from_callable(refuses, name="r"), "cpu")
    assert probe.domain == Domain() and "refused every" in probe.note


def test_contains():
    d = Domain(head_dims=(64,), dtypes=("float16",), heads=("mha",), same_length=True, length_multiple=64)
    inside = Case(1, 2, 2, 128, 128, 64, "float16", True, None, "gaussian", 0, "bnhd")
    assert d.contains(inside)
    for change in ({"nk": 64}, {"nq": 96, "nk": 96}, {"hkv": 1}, {"head_dim": 80}, {"dtype": "bfloat16"}):
        assert not d.contains(Case.from_params({**inside.params(), **change}))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"head_dim":[64]}', "unknown domain field"),
        ('{"dtypes":["float32"]}', "dtypes"),
        ('{"length_multiple":48}', "length_multiple"),
        ('{"heads":"mha"}', "heads: expected a list"),
        ('{"same_length":1}', "same_length"),
        ("[1]", "JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_domain_json_names_the_field(text, needle):
    with pytest.raises(DomainError, match=needle):
        Domain.from_json(text)
    assert json.loads(json.dumps(Domain().to_dict())) == Domain().to_dict()


def fuzz_cli(*args):
    return CliRunner().invoke(cli, ["fuzz", *args], catch_exceptions=False)


def test_cli_states_the_domain_and_prints_it():
    result = fuzz_cli(
        "--kernel", f"{bk.__name__}:narrow_domain", "--profile", "ci", "--examples", "12", "--json",
        "--no-database", "--device", DEVICE, "--max-n", CPU_CI_MAX_N,
        "--head-dims", "64", "--same-length", "--length-multiple", "64",
        "--domain", '{"dtypes":["float16"],"heads":["mha"]}',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    domain = report["domain"]["domain"]
    assert domain["head_dims"] == [64] and domain["dtypes"] == ["float16"] and domain["heads"] == ["mha"]
    assert domain["same_length"] is True and domain["length_multiple"] == 64
    assert report["passed"] >= 9 and report["coverage"]["domain"]["inside"] >= 9
    table = fuzz_cli("--kernel", f"{bk.__name__}:narrow_domain", "--examples", "3", "--no-database")
    assert "domain of" in table.stdout and "refused" in table.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kernel", "int8", "--head-dims", "64"], "registered spec"),
        (["--kernel", f"{bk.__name__}:correct_fp32", "--domain", '{"bad":1}'], "unknown domain field"),
        (["--kernel", f"{bk.__name__}:correct_fp32", "--head-dims", "x"], "--head-dims"),
        (["--kernel", f"{bk.__name__}:correct_fp32", "--layouts", "nhd"], "layouts"),
    ],
)
def test_cli_bad_domain_exits_2(args, needle):
    result = fuzz_cli(*args, "--examples", "1", "--no-database")
    assert result.exit_code == 2 and needle in result.stderr
