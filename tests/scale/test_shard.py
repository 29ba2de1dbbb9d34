"""Sharding a run: a shard index outside the count is a usage error, and nothing is written."""

from harness.cli import main


def test_shard_index_out_of_range_is_a_usage_error(tiny_run, capsys):
    args = tiny_run.flags(quant="rtn-w8")
    assert main(["shard", "--index", "2", "--count", "2", *args]) == 4
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "index must lie in 0..count-1" in err
    assert not (tiny_run.report_dir / "parts").exists()
