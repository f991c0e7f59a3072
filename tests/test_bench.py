"""`cnnexp bench` reports throughput and a time breakdown that adds up."""

from __future__ import annotations

import pytest


def test_bench_json_breakdown(cli) -> None:
    res = cli("bench", "data.subset=256", "--steps", "3", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.stderr
    out = res.json()
    assert out["device"] == "cpu" and out["images_per_sec"] > 0
    assert set(out["ms_per_step"]) == {"data", "forward_backward", "optimizer", "logging"}
    assert all(v >= 0 for v in out["ms_per_step"].values())
    assert sum(out["share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert out["share"]["forward_backward"] > out["share"]["logging"]


def test_bench_bad_input(cli) -> None:
    res = cli("bench", "arch=resnet7", "--json")
    assert res.exit_code == 2 and "unknown arch component" in res.stderr
