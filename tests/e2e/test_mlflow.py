"""--mlflow: two real tiny runs logged to a local MLflow file store (the default `mlruns` in the report directory,
then the same store through MLFLOW_TRACKING_URI), read back with MLflow's own client; a missing mlflow and an
unreachable server are one-line usage errors before anything is measured."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow", reason="needs mlflow: pip install 'quantsink[mlflow]'")


def test_runs_nested_runs_metrics_and_artifacts_in_a_file_store(tiny_run, monkeypatch, tmp_path):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = tiny_run(quant="rtn-w8,rtn-w2g16", mlflow="auto")  # the bare flag: REPORT_DIR/mlruns
    store = tiny_run.report_dir / "mlruns"
    assert store.is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())  # the standard variable: the same store, appended
    second = tiny_run(quant="rtn-w8", mlflow="auto")

    client = MlflowClient(tracking_uri=store.as_uri())
    exp = client.get_experiment_by_name("quantsink")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = {r.data.tags["quantsink.run_id"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert set(parents) == {first["run_id"], second["run_id"]}
    for res in (first, second):
        parent = parents[res["run_id"]]
        assert parent.data.tags["verdict"] == res["verdict"]
        assert parent.data.params["model"] == "tiny-llama" and parent.data.params["profile"] == "smoke"
        assert parent.data.params["comparable.seq_len"] == str(res["settings"]["seq_len"])
        assert parent.info.status == "FINISHED"
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert artifacts == {"results.json", "summary.md", "report.html"}
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(c.data.tags["mlflow.runName"] for c in children) == sorted(c["spec"] for c in res["configs"])
        for child in children:
            cfg = next(c for c in res["configs"] if c["spec"] == child.data.tags["mlflow.runName"])
            assert child.data.tags["verdict"] == cfg["verdict"] and child.data.params["spec"] == cfg["spec"]
            gates = {g["metric"]: g for g in cfg["gates"]}
            for name, gate in gates.items():
                for suffix, key in (("", "value"), (".ci_low", "ci_low"), (".ci_high", "ci_high")):
                    if gate.get(key) is not None:
                        assert child.data.metrics[f"{name}{suffix}"] == pytest.approx(gate[key]), (name, suffix)
            assert "kld_mean.ci_high" in child.data.metrics
    assert len(runs) == 2 + 3  # two runs, three configurations
    got = client.download_artifacts(parents[second["run_id"]].info.run_id, "results.json", str(tmp_path))
    assert json.loads(Path(got).read_text())["run_id"] == second["run_id"]


def test_missing_mlflow_is_one_line_before_measuring(tiny_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    assert main(tiny_run.flags(quant="rtn-w8", mlflow="auto")) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ERROR: --mlflow needs mlflow: pip install 'quantsink[mlflow]' (or pip install mlflow-skinny)"]
    assert not (tiny_run.report_dir / "index.jsonl").exists()


def test_unreachable_server_fails_before_measuring(tiny_run, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    assert main(tiny_run.flags(quant="rtn-w8", mlflow=f"http://127.0.0.1:{port}")) == 4
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert f"--mlflow http://127.0.0.1:{port}: the tracking server did not answer" in err
    assert not (tiny_run.report_dir / "index.jsonl").exists()
