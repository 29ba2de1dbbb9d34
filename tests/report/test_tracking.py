"""--mlflow's tracking URI: the flag's value, else MLFLOW_TRACKING_URI, else REPORT_DIR/mlruns."""

from harness.report.tracking import tracking_uri


def test_tracking_uri_from_flag_environment_or_report_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri("auto", tmp_path / "rep") == (tmp_path / "rep" / "mlruns").as_uri()
    assert tracking_uri(str(tmp_path / "store"), "rep") == (tmp_path / "store").as_uri()  # a plain directory
    assert tracking_uri("http://mlflow.example:5000", "rep") == "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    assert tracking_uri("auto", "rep") == "databricks"
    assert tracking_uri("http://other:5000", "rep") == "http://other:5000"  # the flag wins
