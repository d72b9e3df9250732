"""benchmarks/host_profile.py, the GPU check's host-time profile, runs and reports on the CPU."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import host_profile  # noqa: E402


def test_host_profile_reports_each_part(tmp_path, capsys):
    out = tmp_path / "host.txt"
    host_profile.main(["--device", "cpu", "--networks", "alexnet", "--reps", "2", "--top", "5", "--out", str(out)])
    text = out.read_text()
    assert text == capsys.readouterr().out
    assert "## alexnet, batch 1, torch.float32, cpu" in text
    assert "forward: median" in text and "host time" in text
    assert "cProfile over 2 forwards" in text and "fastalex.linear" in text  # an op of the forward, by name
    assert "fastalex::conv2d_relu" in text  # torch.profiler's table


def test_host_profile_rejects_unknown_networks():
    with pytest.raises(SystemExit):
        host_profile.main(["--device", "cpu", "--networks", "vgg"])
