"""Corpus and prompt loading: bundled sets, python-docs, and bad input."""

import json

import pytest

from harness.data.sets import load_corpus, load_prompts, python_docs
from harness.errors import UsageError


def test_bundled_corpus_covers_kinds_and_hash_is_stable():
    c = load_corpus("bundled")
    text = "\n".join(c.documents)
    assert "def " in text and "駅" in text and "\n- " in text and '"' in text
    assert load_corpus("bundled").sha256 == c.sha256 and len(c.sha256) == 64


def test_python_docs_is_deterministic():
    a = python_docs(max_files=40)
    assert len(a) > 10 and all(len(d) >= 200 for d in a)
    assert a == python_docs(max_files=40)


@pytest.mark.slow
def test_python_docs_is_large():
    docs = python_docs()
    assert len(docs) > 200 and sum(len(d) for d in docs) > 1_000_000


def test_bundled_prompts():
    p = load_prompts("bundled")
    assert len(p.prompts) >= 100
    assert sum(1 for x in p.prompts if x.references) >= 60
    kinds = {x.id.split("-")[0] for x in p.prompts if x.references}
    assert {"capital", "fact", "add", "seq", "copy", "recall"} <= kinds


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "holds no text"),
        (b"\x00\x01\x02binary", "binary"),
        (b"caf\xe9 au lait", "not UTF-8"),
    ],
)
def test_bad_corpus_files(tmp_path, content, needle):
    f = tmp_path / "c.txt"
    f.write_bytes(content)
    with pytest.raises(UsageError, match=needle):
        load_corpus(str(f))


def test_jsonl_corpus_and_bad_line(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"text": "hello there"}) + "\n" + json.dumps({"text": "second doc"}) + "\n")
    assert load_corpus(str(f)).documents == ("hello there", "second doc")
    f.write_text(json.dumps({"text": "ok"}) + "\n{not json\n")
    with pytest.raises(UsageError, match=r"c.jsonl:2"):
        load_corpus(str(f))


def test_prompt_file_malformed_line_is_named(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": "b", "references": "x"}\n')
    with pytest.raises(UsageError, match=r"p.jsonl:2: 'references' must be a list"):
        load_prompts(str(f))
    f.write_text('{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": \n')
    with pytest.raises(UsageError, match=r"p.jsonl:2: malformed JSON"):
        load_prompts(str(f))
    with pytest.raises(UsageError, match="not found"):
        load_prompts(str(tmp_path / "nope.jsonl"))
