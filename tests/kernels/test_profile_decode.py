"""bench/profile_decode.py on the CPU: the launches a profiler captures run and match the emulation."""

from __future__ import annotations

import re

import pytest

from tests.scripts import load_script


@pytest.mark.interpreter
def test_launches_each_width_and_checks_it(capsys):
    profile = load_script("bench/profile_decode.py")
    assert profile.main(["--tiny", "--warmup", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["int4", "int8"]
    for line in lines:
        assert "2 launches" in line
        assert float(re.search(r"emulation ([0-9.e+-]+)", line).group(1)) < 2e-3


def test_bad_counts_are_refused(capsys):
    profile = load_script("bench/profile_decode.py")
    with pytest.raises(SystemExit):
        profile.main(["--tiny", "--nq", "0"])
    assert "at least 1" in capsys.readouterr().err
