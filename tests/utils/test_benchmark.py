"""bench.model_speed: the comparison arithmetic, the RESULT line and the model command.

Expected values: worked by hand from the samples the tests build (no timing is asserted).
"""

import re

import pytest

from bench import model_speed
from bench import timing as benchmark
from bench.timing import QuietGate, Sample, pairwise_ratio, result_line
from utils.runtime import tune_malloc


def _samples(seconds, probes):
    return [Sample(s, p, p) for s, p in zip(seconds, probes, strict=True)]


def test_pairwise_ratio_keeps_quiet_rounds_only():
    gate = QuietGate(slack=0.3, best=0.1)
    samples = {
        # Round 1 ran while the machine was slow (probe 0.5 s): it must not count.
        "ours": _samples([1.0, 9.0, 2.0], [0.1, 0.5, 0.1]),
        "peer": _samples([3.0, 9.0, 4.0], [0.1, 0.1, 0.12]),
    }
    comparison = pairwise_ratio(samples, gate)
    assert (comparison.rounds_kept, comparison.rounds) == (2, 3)
    assert comparison.ours == pytest.approx(1.5)
    assert comparison.peer == pytest.approx(3.5)
    assert comparison.ratio == pytest.approx((3.0 + 2.0) / 2)  # median of 3/1 and 4/2
    assert not comparison.noisy


def test_pairwise_ratio_without_quiet_round_is_flagged():
    gate = QuietGate(slack=0.3, best=0.1)
    samples = {"ours": _samples([1.0], [0.4]), "peer": _samples([2.0], [0.4])}
    comparison = pairwise_ratio(samples, gate)
    assert comparison.noisy and comparison.ratio == pytest.approx(2.0)


def test_time_alternating_reverses_order_every_round(monkeypatch):
    monkeypatch.setattr(benchmark, "matmul_probe", lambda: 0.1)
    calls = []
    runners = {"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 2.0}
    samples = benchmark.time_alternating(runners, 3, QuietGate(max_wait=0), log=lambda _: None)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [s.seconds for s in samples["b"]] == [2.0, 2.0, 2.0]


def test_result_line_format():
    line = result_line("infer_e2e_fp32", 0.8123, 0.4, 2.03)
    assert re.fullmatch(r"RESULT infer_e2e_fp32 ours=0\.8123 peer=0\.4 ratio=2\.03", line)


def test_benchmark_command_on_tiny_config(capsys):
    code = model_speed.main(
        [
            "--config",
            "tests/configs/tiny_res2net.yaml",
            "--sizes",
            "64",
            "--batch-sizes",
            "1",
            "2",
            "--repeats",
            "1",
            "--max-wait",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"\d+\.\d+ M parameters", out)
    rows = [line.split() for line in out.splitlines() if line.startswith("  64x64")]
    assert [row[1] for row in rows] == ["1", "2"]
    one, two = (float(row[3]) for row in rows)  # GFLOP per forward pass
    assert one > 0 and two == pytest.approx(2 * one, rel=0.01)


def test_tune_malloc_is_idempotent_and_can_be_disabled(monkeypatch):
    first = tune_malloc()
    assert tune_malloc() is first
    monkeypatch.setattr("utils.runtime._STATE", {"tuned": False})
    monkeypatch.setenv("SOD_MALLOC_TUNING", "0")
    assert tune_malloc() is False
