"""`--mlflow [URI]`: each run logged as an MLflow run, with one nested run per configuration.

The parent run holds the run's parameters (model, revision, profile, configurations and every setting that enters
comparability), its verdict as a tag and the artifacts results.json, summary.md and report.html; each nested run holds
a configuration's parameters, every gated metric with its interval ends (`<metric>`, `<metric>.ci_low`,
`<metric>.ci_high`; one task's own gate `<metric>@<task>` as `<metric>/<task>`, the task's name with every character
MLflow refuses as `_`) and its verdict as a tag. The URI: the flag's value, else MLFLOW_TRACKING_URI, else a local
`mlruns` directory in the report directory. The tracking store is checked before anything is measured (a bounded
wait for a server), so an unreachable one never costs a measurement. mlflow is imported only here, lazily.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.config.identity import comparable_identity
from harness.errors import UsageError
from harness.system.files import ensure_writable_dir

BARE = "auto"  # the value of a bare --mlflow
EXPERIMENT = "quantsink"
INSTALL = "pip install 'quantsink[mlflow]' (or pip install mlflow-skinny)"
WAIT_S = 10.0  # the longest wait for a tracking server to answer before the run is refused


def tracking_uri(flag: str, report_dir: str | Path) -> str:
    """The flag's URI, else MLFLOW_TRACKING_URI, else file:REPORT_DIR/mlruns."""
    if flag and flag != BARE:
        uri = flag
    else:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        uri = (Path(report_dir).expanduser().resolve() / "mlruns").as_uri()
    elif ":" not in uri.split("/")[0] and ("/" in uri or uri.startswith((".", "~"))):
        uri = Path(uri).expanduser().resolve().as_uri()  # a directory path (a bare word such as databricks is MLflow's)
    return uri


def _mlflow():
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(f"--mlflow needs mlflow: {INSTALL}") from None
    return MlflowClient


def _file_store(uri: str) -> None:
    """mlflow 3 refuses a file store unless told it is wanted: a local `mlruns` directory is what --mlflow asks for."""
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def check_tracking(flag: str, report_dir: str | Path) -> str:
    """Before measuring: mlflow importable, a file store writable, a server answering within WAIT_S; the URI, or a
    one-line UsageError naming the fix."""
    _mlflow()
    uri = tracking_uri(flag, report_dir)
    if uri.startswith("file:"):
        ensure_writable_dir(Path(urllib.request.url2pathname(uri[len("file:") :].removeprefix("//"))), "--mlflow")
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=WAIT_S):
                pass
        except urllib.error.HTTPError:
            pass  # it answered (even 401/404): reachable
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise UsageError(
                f"--mlflow {uri}: the tracking server did not answer within {WAIT_S:g} s ({reason}); start it, "
                f"fix the URI (or MLFLOW_TRACKING_URI), or run without --mlflow"
            ) from None
    return uri


def _params(d: dict) -> list:
    from mlflow.entities import Param

    return [Param(str(k)[:250], str(v)[:6000]) for k, v in d.items() if v is not None]


def metric_key(gate: str) -> str:
    """A gate's name as MLflow takes it: `<metric>@<task>` becomes `<metric>/<task>` (MLflow refuses '@'), the
    task's name with anything but letters, digits, '_' and '-' as '_' (no dot or slash makes it a path)."""
    metric, at, part = gate.partition("@")
    return metric + "/" + re.sub(r"[^\w-]", "_", part) if at else metric


def _metrics(cfg: dict, step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    for g in cfg.get("gates") or []:
        for suffix, key in (("", "value"), (".ci_low", "ci_low"), (".ci_high", "ci_high")):
            v = g.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(Metric(f"{metric_key(g['metric'])}{suffix}", float(v), now, step))
    return out


def log_run(results: dict, run_dir: Path, flag: str, report_dir: str | Path) -> str:
    """Log a written run to MLflow: the parent run's id."""
    client_cls = _mlflow()
    uri = tracking_uri(flag, report_dir)
    _file_store(uri)
    client = client_cls(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
    st, model = results.get("settings") or {}, results.get("model") or {}
    tags = {"verdict": results.get("verdict"), "quantsink.run_id": results.get("run_id")}
    parent = client.create_run(exp_id, run_name=results.get("run_id"), tags=tags)
    pid = parent.info.run_id
    step = int(time.time())  # runs of one configuration line up in time
    params = {
        "model": model.get("id"),
        "revision": model.get("revision"),
        "spec": ",".join(st.get("spec") or []),
        "profile": st.get("profile"),
        "policy": st.get("policy"),
        **{f"comparable.{k.replace(' ', '_')}": v for k, v in comparable_identity(results).items()},
    }
    client.log_batch(pid, params=_params(params))
    for cfg in results.get("configs", []):
        child = client.create_run(
            exp_id,
            run_name=cfg.get("spec"),
            tags={"mlflow.parentRunId": pid, "verdict": cfg.get("verdict"), "quantsink.run_id": results.get("run_id")},
        )
        cparams = {**params, **{k: cfg.get(k) for k in ("spec", "method", "bits", "bit_class", "measured_as")}}
        client.log_batch(child.info.run_id, metrics=_metrics(cfg, step), params=_params(cparams))
        client.set_terminated(child.info.run_id)
    for name in ("results.json", "summary.md", "report.html"):
        if (run_dir / name).is_file():
            client.log_artifact(pid, str(run_dir / name))
    client.set_terminated(pid)
    return pid
