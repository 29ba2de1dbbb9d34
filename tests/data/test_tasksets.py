"""--tasks specs: the plain format's one-line errors, lm-eval YAMLs over local data, Hub-only tasks refused, names."""

import json

import pytest

from harness.data.tasksets import TASKS_DIR, bundled_names, load_plain, load_tasks
from harness.errors import UsageError


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


MC = {"question": "What is 2 plus 2?", "choices": ["3", "4"], "answer": 1, "family": "add"}
GEN = {"prompt": "The capital of France is", "answers": ["Paris"], "family": "capitals"}


def test_bundled_task_has_300_items_in_20_families():
    assert "basics" in bundled_names()
    t = load_plain(TASKS_DIR / "basics.jsonl", "basics")
    assert len(t.items) >= 300 and len({i.family for i in t.items}) >= 20
    assert all(i.multiple_choice and i.choices[i.answer] for i in t.items)
    assert load_tasks("basics")[0].sha256 == t.sha256


def test_plain_file_multiple_choice_and_generation(tmp_path):
    (t,) = load_tasks(str(_write(tmp_path / "mine.jsonl", [MC, GEN])))
    assert t.name == "mine" and [i.multiple_choice for i in t.items] == [True, False]
    assert t.items[1].answers == ("Paris",) and t.items[0].id == "add-1"


@pytest.mark.parametrize(
    "row, words",
    [
        ("{not json", [":2:", "not valid JSON"]),
        ({**MC, "answer": 5}, [":2:", "index of the correct choice", "0..1"]),
        ({**MC, "choices": ["4"]}, [":2:", "at least 2"]),
        ({**MC, "choices": ["4", "4"], "answer": 0}, ["repeats a choice"]),
        ({"prompt": "x", "answers": []}, ["'answers' must be a non-empty list"]),
        ({"text": "x"}, ["neither multiple-choice nor generation"]),
        ({**MC, "family": ""}, ["'family' must be a non-empty string"]),
        ({**MC, "answer": True}, ["index of the correct choice"]),
    ],
)
def test_plain_format_errors_name_the_line_and_the_fix(tmp_path, row, words):
    p = _write(tmp_path / "bad.jsonl", [MC, row])
    with pytest.raises(UsageError) as e:
        load_tasks(str(p))
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    for w in words:
        assert w in msg


def _yaml(folder, name, dataset="json", data="data.jsonl", extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "data.jsonl", [MC])
    files = f"dataset_kwargs:\n  data_files:\n    test: {data}\n" if data else ""
    y = folder / f"{name}.yaml"
    y.write_text(
        f"task: {name}\ndataset_path: {dataset}\n{files}test_split: test\noutput_type: multiple_choice\n"
        f'doc_to_text: "{{{{question}}}}"\ndoc_to_choice: "{{{{choices}}}}"\ndoc_to_target: answer\n{extra}'
    )
    return y


def test_lmeval_yaml_over_local_files_and_by_name_in_tasks_dir(tmp_path):
    y = _yaml(tmp_path / "t", "mytask")
    (t,) = load_tasks(str(y))
    assert t.kind == "lmeval" and t.name == "mytask" and t.data_files == (str((tmp_path / "t/data.jsonl").resolve()),)
    (by_name,) = load_tasks("mytask", str(tmp_path / "t"))
    assert by_name.sha256 == t.sha256
    (in_dir,) = load_tasks(str(tmp_path / "t"))
    assert in_dir.name == "mytask"


def test_hub_only_task_is_one_line_usage_error_naming_the_dataset(tmp_path):
    y = _yaml(tmp_path / "h", "hubtask", dataset="allenai/ai2_arc", data=None)
    with pytest.raises(UsageError) as e:
        load_tasks(str(y))
    msg = str(e.value)
    assert "\n" not in msg and "'allenai/ai2_arc'" in msg and "never downloads" in msg


def test_missing_or_remote_data_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not a local file"):
        load_tasks(str(_yaml(tmp_path / "m", "missing", data="nowhere.jsonl")))
    with pytest.raises(UsageError, match="not a local file"):
        load_tasks(str(_yaml(tmp_path / "r", "remote", data="https://example.org/x.jsonl")))


def test_unknown_names_and_duplicates(tmp_path):
    with pytest.raises(UsageError, match="unknown task 'nope'.*--tasks-dir"):
        load_tasks("nope")
    with pytest.raises(UsageError, match="twice"):
        load_tasks("basics,basics")
    with pytest.raises(UsageError, match="--tasks-dir .* is not a directory"):
        load_tasks("basics", str(tmp_path / "absent"))
    assert load_tasks("none") == () and load_tasks("") == ()


def test_local_dataset_folder_relative_to_the_yaml(tmp_path):
    y = _yaml(tmp_path / "d", "localdir", dataset="mydata", data=None)
    with pytest.raises(UsageError, match="'mydata'"):
        load_tasks(str(y))
    (tmp_path / "d" / "mydata").mkdir()
    (task,) = load_tasks(str(y))
    assert task.data_files == (str((tmp_path / "d" / "mydata").resolve()),)
