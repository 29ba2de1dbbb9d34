"""The user's own tasks (`--tasks SPEC[,SPEC...]`, `--tasks-dir DIR`): the bundled plain format and lm-eval task files.

A SPEC is one of: `none`; the name of a bundled plain task (harness/data/tasks/<name>.jsonl); a plain-format JSONL
file; an lm-eval task YAML or a directory of them; the name of a task in `--tasks-dir`. Plain format, one JSON
object a line: multiple-choice {"question", "choices", "answer" (index), "family"} or generation {"prompt", "answers"
(accepted list), "family"}; "id" optional. Nothing is ever downloaded: an lm-eval task whose dataset is not a local
file is a usage error naming the dataset. Every task carries a sha256 of its content (the run's identity).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

TASKS_DIR = Path(__file__).parent / "tasks"  # bundled plain-format tasks
LMEVAL_INSTALL = "pip install 'quantsink[lmeval]' (lm-eval)"
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")  # datasets builders that read data_files


@dataclass(frozen=True)
class TaskItem:
    """One sample of a plain task: multiple-choice (choices, answer index) or generation (accepted answers)."""

    id: str
    family: str
    text: str  # question (multiple-choice) or prompt (generation)
    choices: tuple[str, ...] = ()
    answer: int = -1
    answers: tuple[str, ...] = ()

    @property
    def multiple_choice(self) -> bool:
        return bool(self.choices)


@dataclass(frozen=True)
class PlainTask:
    name: str
    path: str
    sha256: str
    items: tuple[TaskItem, ...]
    kind: str = "plain"


@dataclass(frozen=True)
class LmEvalTask:
    """An lm-eval task YAML over local data: `name` as lm-eval knows it, `include` the folder lm-eval indexes."""

    name: str
    path: str
    sha256: str
    include: str
    data_files: tuple[str, ...] = ()
    kind: str = "lmeval"


def bundled_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.jsonl"))


def mc_context(question: str) -> str:
    """The context a multiple-choice question is scored in (each choice follows after one space, as in lm-eval's
    default target_delimiter): the same text the lm-eval YAML of a plain task writes (scripts/make_tasks.py)."""
    return f"Question: {question}\nAnswer:"


def lmeval_yaml(name: str, data_file: str) -> str:
    """The lm-eval task YAML of a multiple-choice plain task whose items are in `data_file` (absolute, so lm-eval
    reads it from any working directory): the same context and choices as the native path."""
    return (
        f"# lm-eval twin of a quantsink plain task: the context of harness.data.tasksets.mc_context\n"
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(data_file)}\n"
        f"test_split: test\noutput_type: multiple_choice\n"
        f'doc_to_text: "Question: {{{{question}}}}\\nAnswer:"\n'
        f'doc_to_choice: "{{{{choices}}}}"\ndoc_to_target: answer\n'
        f"metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        f"  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )


def gen_context(prompt: str) -> str:
    """A generation item's prompt as the model sees it."""
    return prompt


def _fail(path, line: int, what: str) -> UsageError:
    return UsageError(f"task file {path}:{line}: {what}")


def _item(path, i: int, d, seen: set) -> TaskItem:
    if not isinstance(d, dict):
        raise _fail(path, i, 'expected a JSON object; give {"question", "choices", "answer"} or {"prompt", "answers"}')
    fam = d.get("family", "all")
    if not isinstance(fam, str) or not fam.strip():
        raise _fail(path, i, "'family' must be a non-empty string (the group intervals resample), e.g. \"arithmetic\"")
    iid = str(d.get("id", f"{fam}-{i}"))
    if iid in seen:
        raise _fail(path, i, f"duplicate id '{iid}'; give each line its own id")
    seen.add(iid)
    if "question" in d or "choices" in d:
        q, ch, a = d.get("question"), d.get("choices"), d.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise _fail(path, i, "'question' must be a non-empty string")
        if not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) and c.strip() for c in ch):
            raise _fail(path, i, "'choices' must be a list of at least 2 non-empty strings")
        if len(set(ch)) != len(ch):
            raise _fail(path, i, "'choices' repeats a choice; give distinct choices")
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < len(ch):
            raise _fail(path, i, f"'answer' must be the index of the correct choice, an integer 0..{len(ch) - 1}")
        return TaskItem(iid, fam, q, tuple(ch), a)
    if "prompt" in d or "answers" in d:
        p, ans = d.get("prompt"), d.get("answers")
        if not isinstance(p, str) or not p.strip():
            raise _fail(path, i, "'prompt' must be a non-empty string")
        if not isinstance(ans, list) or not ans or not all(isinstance(x, str) and x.strip() for x in ans):
            raise _fail(path, i, "'answers' must be a non-empty list of accepted answer strings")
        return TaskItem(iid, fam, p, answers=tuple(ans))
    raise _fail(
        path, i, 'neither multiple-choice nor generation: give "question"/"choices"/"answer" or "prompt"/"answers"'
    )


def load_plain(path: Path, name: str | None = None) -> PlainTask:
    """A plain-format JSONL task, every line checked (UsageError naming the line and the fix)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"task file {path} is not UTF-8 (byte {e.start}); re-encode it as UTF-8") from None
    except OSError as e:
        raise UsageError(f"task file {path} cannot be read ({e.strerror}); give a readable .jsonl file") from None
    items, seen = [], set()
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise _fail(path, i, f"not valid JSON ({e.msg}); one JSON object per line") from None
        items.append(_item(path, i, d, seen))
    if not items:
        raise UsageError(f"task file {path} holds no samples; give one JSON object per line")
    return PlainTask(name or path.stem, str(path), hashlib.sha256(raw).hexdigest(), tuple(items))


# ---- lm-eval task files ----
def _yaml(path: Path) -> dict:
    """An lm-eval YAML read without lm-eval (its !function tags kept as text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {getattr(node, 'value', '')}")
    try:
        d = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"task file {path} is not readable YAML ({one(e)}); give an lm-eval task YAML") from None
    if not isinstance(d, dict):
        raise UsageError(f"task file {path} is not an lm-eval task (a YAML mapping with 'task:')")
    inc = d.get("include")
    if isinstance(inc, str):  # lm-eval merges the included file under this one
        base = _yaml((path.parent / inc).resolve())
        d = {**base, **{k: v for k, v in d.items() if k != "include"}}
    return d


def one(e) -> str:
    return " ".join(str(e).split())[:200]


def _local_files(path: Path, d: dict) -> tuple[str, ...]:
    """The task's data files, all local; UsageError naming the dataset when it would come from the Hub."""
    ds = d.get("dataset_path")
    kwargs = d.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if ds is None and d.get("custom_dataset") is None:
        raise UsageError(f"lm-eval task {path} names no dataset_path; give dataset_path: json with data_files")
    if ds in LOCAL_BUILDERS:
        if not files:
            raise UsageError(
                f"lm-eval task {path}: dataset_path {ds} needs dataset_kwargs.data_files (local files); add them"
            )
        flat = [files] if isinstance(files, str) else list(files.values()) if isinstance(files, dict) else list(files)
        flat = [f for x in flat for f in ([x] if isinstance(x, str) else x)]
        out = []
        for f in flat:
            p = Path(f) if Path(f).is_absolute() else (path.parent / f)
            if "://" in str(f) or not p.exists():
                raise UsageError(
                    f"lm-eval task {path}: data file '{f}' is not a local file (quantsink never downloads); "
                    f"give a path that exists, absolute or relative to the YAML"
                )
            out.append(str(p.resolve()))
        return tuple(out)
    local = Path(str(ds)).expanduser()
    local = local if local.is_absolute() else path.parent / local  # lm-eval runs in the YAML's folder
    if ds is not None and local.is_dir():  # a local dataset folder (datasets loads it without the Hub)
        return (str(local.resolve()),)
    raise UsageError(
        f"lm-eval task {path} needs dataset '{ds}' from the Hugging Face Hub, and quantsink never downloads; "
        f"copy its data to local files and use dataset_path: json with dataset_kwargs.data_files"
    )


def _sha_files(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        for f in sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]:  # a folder: every file
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def load_lmeval(path: Path) -> LmEvalTask:
    """An lm-eval task YAML whose data are local files (checked here, before anything loads)."""
    d = _yaml(path)
    name = d.get("task")
    if not isinstance(name, str) or not name:
        raise UsageError(f"lm-eval task {path} has no 'task:' name (a group file is not supported); name one task")
    files = _local_files(path, d)
    # data_files relative to the YAML: lm-eval reads them relative to the working directory, so the run rewrites
    # them (engine/tasks.py); the sha covers the YAML and every data file
    return LmEvalTask(name, str(path), _sha_files([path, *files]), str(path.parent), files)


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _by_name(name: str, tasks_dir: str | None):
    if tasks_dir:
        folder = Path(tasks_dir)
        for p in _yaml_files(folder):
            try:
                d = _yaml(p)
            except UsageError:
                continue
            if d.get("task") == name:
                return load_lmeval(p)
    if name in bundled_names():
        return load_plain(TASKS_DIR / f"{name}.jsonl", name)
    where = f" or in --tasks-dir {tasks_dir}" if tasks_dir else " (a task name needs --tasks-dir DIR)"
    raise UsageError(
        f"unknown task '{name}': not a file, not a bundled task ({', '.join(bundled_names()) or 'none'}){where}; "
        f"give a .jsonl or lm-eval .yaml path, a bundled name or a task in --tasks-dir"
    )


def load_tasks(spec: str | None, tasks_dir: str | None = None) -> tuple:
    """Every task named by --tasks, resolved and checked (UsageError, one line, on the first problem)."""
    items = [x.strip() for x in str(spec or "").split(",") if x.strip()]
    if items in ([], ["none"]):
        if tasks_dir:
            _check_dir(tasks_dir)
        return ()
    if tasks_dir:
        _check_dir(tasks_dir)
    out = []
    for s in items:
        p = Path(s).expanduser()
        if p.is_dir():
            found = _yaml_files(p)
            if not found:
                raise UsageError(f"task directory {p} holds no .yaml task files; give lm-eval task YAMLs")
            out += [load_lmeval(f) for f in found]
        elif p.suffix == ".jsonl":
            if not p.is_file():
                raise UsageError(f"task file {p} not found; give an existing .jsonl file")
            out.append(load_plain(p))
        elif p.suffix in (".yaml", ".yml"):
            if not p.is_file():
                raise UsageError(f"task file {p} not found; give an existing lm-eval .yaml file")
            out.append(load_lmeval(p))
        else:
            out.append(_by_name(s, tasks_dir))
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"--tasks names task '{dup[0]}' twice; give each task once")
    return tuple(out)


def _check_dir(tasks_dir: str) -> None:
    if not Path(tasks_dir).is_dir():
        raise UsageError(f"--tasks-dir {tasks_dir} is not a directory; give the folder of your lm-eval task YAMLs")
