"""Plain-Python entry point: the same run as `pytest suites`, without pytest (e.g. nightly jobs).

    python -m harness [OPTIONS]      run, write REPORT_DIR/<run_id>/, print the verdict block
    python -m harness metrics        the metric catalogue (--markdown: the table of docs/results.md)
    python -m harness methods        registered quantization methods and their availability
    python -m harness shard --index I --count N [OPTIONS]   measure one share of the configurations
    python -m harness merge PART_DIR... --report-dir DIR     join the parts into one run (harness.scale.shard)
    python -m harness history [REPORT_DIR]   the runs newest first, steps, drift; --metric/--config, --html, --prune

Options are generated from settings.SETTINGS, the same table as the pytest option group.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from harness.config.build import RunSpec, build_spec
from harness.config.settings import BY_NAME, SETTINGS
from harness.engine.session import Session
from harness.errors import EXIT_CODES, QuantsinkWarning, UsageError, exit_code
from harness.history.listing import run_lines, series_lines
from harness.history.retention import parse_keep, prune
from harness.history.runs import pin, pin_line
from harness.history.trend import History
from harness.methods import availability
from harness.metrics.catalogue import markdown_table, text_table
from harness.report.historypage import write_history
from harness.report.results import write_run
from harness.report.summary import verdict_lines
from harness.scale.cluster import fanout_for
from harness.scale.shard import merge, run_shard

USAGE_ERROR = EXIT_CODES["usage"]


def run(spec: RunSpec | dict, progress=None) -> dict:
    """Measure every configuration, write REPORT_DIR/<run_id>/ and the index line; return results."""
    return run_session(spec, progress)[0]


def run_session(spec: RunSpec | dict, progress=None, header=None):
    """(results, run directory) of a complete run; header(lines) receives what the run is about to do."""
    if isinstance(spec, dict):
        spec = build_spec(spec)

    session = Session(spec, progress, fanout=fanout_for(spec)).prepare()
    if header is not None:
        header(session.header())
    session.run_all()
    results = session.results()

    return results, write_run(results, spec.report_dir, spec.mlflow)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits 4, like pytest's usage errors."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"ERROR: {message} (see python -m harness --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m harness",
        description="Sign off quantized LLMs against their full-precision "
        "baseline (the same run as `pytest suites`). Subcommands: metrics, methods, shard, merge, history "
        "(each with --help).",
    )
    for s in SETTINGS:
        if s.type == "bool":
            p.add_argument(s.option, dest=s.name, action="store_true", default=None, help=s.help_text())
        else:
            p.add_argument(
                s.option,
                dest=s.name,
                default=None,
                metavar=s.meta,
                help=s.help_text(),
                **({"nargs": "?", "const": s.const} if s.const is not None else {}),
            )
    return p


def print_methods() -> None:
    for name, examples, state in availability():
        print(
            f"{name:<8} {state:<10} {examples}"
            if state == "available"
            else f"{name:<8} missing    {examples}\n{'':<8} {state}"
        )


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """quantsink's own warnings as one line (no source line); others as Python prints them."""
    if issubclass(category, QuantsinkWarning):
        print(f"quantsink: warning: {message}", file=file or sys.stderr)
    else:
        _SHOW(message, category, filename, lineno, file, line)


_SHOW = warnings.showwarning


def main(argv=None) -> int:
    """`python -m harness ...`: the exit codes of harness.errors.EXIT_CODES (0 pass or inconclusive, 1 fail,
    2 interrupted, 4 usage error)."""

    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _one_line_warning
    if argv[:1] == ["metrics"]:
        p = _Parser(prog="python -m harness metrics", description="the metric catalogue (docs/results.md)")
        p.add_argument("--markdown", action="store_true", help="the markdown table of docs/results.md")
        print(markdown_table() if p.parse_args(argv[1:]).markdown else text_table())
        return 0
    if argv[:1] == ["methods"]:
        _Parser(
            prog="python -m harness methods",
            description="registered quantization methods and their "
            "availability (or the line that installs their package)",
        ).parse_args(argv[1:])
        print_methods()
        return 0
    if argv[:1] in (["shard"], ["merge"]):
        return _shard_or_merge(argv)
    if argv[:1] == ["history"]:
        return _history(argv[1:])
    values = vars(parser().parse_args(argv))
    try:
        if values.get("pin"):  # --pin records the pin and exits, as under pytest
            spec = build_spec(values)
            print(pin_line(pin(spec.report_dir, spec.pin, anyway=bool(spec.pin_anyway))))
            write_history(spec.report_dir)  # the page shows the new pin
            return EXIT_CODES["pass"]
        with warnings.catch_warnings():
            # a backend's warning once, not once per forward pass (bitsandbytes' int8 cast warned 2,100 times)
            warnings.simplefilter("once")
            for quiet in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):  # for the developers
                warnings.simplefilter("ignore", quiet)
            results, run_dir = run_session(values, header=lambda lines: print("\n".join(lines), flush=True))
    except UsageError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("quantsink: interrupted: no results written, index.jsonl unchanged", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    print("\n".join(verdict_lines(results, run_dir)))
    return exit_code(results["verdict"])


def _shard_or_merge(argv: list[str]) -> int:
    """`shard`: exit 0 once its part is written; `merge`: the run's exit code (harness.errors.EXIT_CODES)."""

    if argv[0] == "shard":
        p = parser()
        p.prog += " shard"
        p.add_argument("--index", type=int, required=True, help="this shard's number, 0..count-1")
        p.add_argument("--count", type=int, required=True, help="how many shards share the configurations")
        values = vars(p.parse_args(argv[1:]))
        index, count = values.pop("index"), values.pop("count")
    else:
        p = _Parser(prog="python -m harness merge", description="join shard parts into one run")
        p.add_argument("parts", nargs="+", metavar="PART_DIR", help="part files or directories holding them")
        p.add_argument("--report-dir", dest="report_dir", default=None, help="where the run is written")
        args = p.parse_args(argv[1:])
    try:
        if argv[0] == "shard":
            path = run_shard(values, index, count)
            print(f"quantsink: shard {index} of {count} written: {path}")
            return 0
        results, run_dir = merge(args.parts, args.report_dir)
    except UsageError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return USAGE_ERROR
    print("\n".join(verdict_lines(results, run_dir)))
    return exit_code(results["verdict"])


def _history(argv: list[str]) -> int:
    """`history [REPORT_DIR]`: the runs newest first with steps and drift, one series (--metric --config), the page
    (--html) or retention (--prune KEEP)."""
    p = _Parser(prog="python -m harness history", description="the runs of a report directory over time")
    p.add_argument(
        "report_dir",
        nargs="?",
        default=BY_NAME["report_dir"].default,
        metavar="REPORT_DIR",
        help=f"the runs' --report-dir (default: {BY_NAME['report_dir'].default})",
    )
    p.add_argument("--model", default=None, help="only the runs of this model")
    p.add_argument("--metric", default=None, metavar="NAME", help="print one gated metric's series (with --config)")
    p.add_argument("--config", default=None, metavar="SPEC", help="the configuration of --metric's series")
    p.add_argument("--html", action="store_true", help="rewrite REPORT_DIR/history.html and print its path")
    p.add_argument(
        "--prune",
        default=None,
        metavar="KEEP",
        help="remove all but the newest KEEP runs (never a pinned "
        "run, nor the newest run of each model's comparable inputs)",
    )
    a = p.parse_args(argv)
    try:
        if (a.metric is None) != (a.config is None):
            raise UsageError("history: --metric and --config go together, e.g. --metric ppl_ratio --config rtn-w8")
        if a.prune is not None:
            removed, kept = prune(a.report_dir, parse_keep(a.prune))
            print(
                f"quantsink: pruned {len(removed)} run(s) from {a.report_dir}, kept {len(kept)}"
                + (f": removed {', '.join(removed)}" if removed else "")
            )
            print(f"quantsink: history page {write_history(a.report_dir)}")
            return 0
        h = History(a.report_dir, a.model)
        if a.html:
            print(f"quantsink: history page {write_history(a.report_dir)}")
            return 0
        print("\n".join(series_lines(h, a.metric, a.config) if a.metric else run_lines(h)))
    except UsageError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return USAGE_ERROR
    return 0
