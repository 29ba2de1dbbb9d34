"""Corpus and prompt sets: bundled files, the run-time `python-docs` corpus, or user paths.

Every set carries a sha256 of its content, recorded in results so that runs are
comparable only when they measured the same text.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

DATA_DIR = Path(__file__).parent  # the bundled corpus, prompts and policy live beside this module
BUILTIN_CORPORA = ("bundled", "python-docs")
BUILTIN_PROMPTS = ("bundled",)


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Corpus:
    name: str
    documents: tuple[str, ...]
    sha256: str

    @classmethod
    def of(cls, name: str, docs: list[str]) -> Corpus:
        return cls(name, tuple(docs), _sha(list(docs)))


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    references: tuple[str, ...] = ()
    long: bool = False  # part of the long-generation subset


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[Prompt, ...]
    sha256: str

    def subset(self, n: int) -> PromptSet:
        """n prompts spread evenly over the file (which groups prompts by family); 0 or >= len: all."""
        if n <= 0 or n >= len(self.prompts):
            return self
        picks = [self.prompts[(i * len(self.prompts)) // n] for i in range(n)]
        return PromptSet(f"{self.name}[{n}]", tuple(picks), _sha([p.__dict__ for p in picks]))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise UsageError(f"corpus file {path} looks binary (NUL bytes); give UTF-8 .txt or .jsonl files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"corpus file {path} is not UTF-8 (byte {e.start}); re-encode it as UTF-8") from None
    return text


SPLITS = ("auto", "none", "paragraphs", "headings")  # or any other text: a separator line
MIN_SECTION = 1000  # characters: blank-line sections are merged until a document has at least this many
_SEPARATORS = ("---", "***", "===")
_HEADING = re.compile(r"^#{1,6} \S")


def split_documents(text: str, rule: str = "auto") -> list[str]:
    """A .txt file's documents (the clusters intervals are over), by a fixed rule:

    auto: at separator lines (a line of only ---, *** or ===) if the file has any; else before markdown headings
    (# Title) if it has at least two; else at blank lines, consecutive sections merged until each holds at least
    MIN_SECTION characters. none: the whole file is one document; paragraphs: every blank-line section;
    headings: before every markdown heading; any other text: at lines that hold exactly that text.
    """
    lines = text.splitlines()

    def cut(is_break, keep_break: bool) -> list[str]:
        docs, cur = [], []
        for ln in lines:
            if is_break(ln):
                docs.append("\n".join(cur))
                cur = [ln] if keep_break else []
            else:
                cur.append(ln)
        docs.append("\n".join(cur))
        return [d.strip("\n") for d in docs if d.strip()]

    def paragraphs() -> list[str]:
        return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]

    if rule == "none":
        return [text] if text.strip() else []
    if rule == "paragraphs":
        return paragraphs()
    if rule == "headings":
        return cut(lambda ln: bool(_HEADING.match(ln)), keep_break=True)
    if rule != "auto":
        return cut(lambda ln: ln.strip() == rule, keep_break=False)
    if any(ln.strip() in _SEPARATORS for ln in lines):
        return cut(lambda ln: ln.strip() in _SEPARATORS, keep_break=False)
    if sum(bool(_HEADING.match(ln)) for ln in lines) >= 2:
        return cut(lambda ln: bool(_HEADING.match(ln)), keep_break=True)
    docs, cur = [], ""
    for para in paragraphs():
        cur = f"{cur}\n\n{para}" if cur else para
        if len(cur) >= MIN_SECTION:
            docs.append(cur)
            cur = ""
    if cur:
        if docs and len(cur) < MIN_SECTION:
            docs[-1] += "\n\n" + cur  # a short tail joins the last document
        else:
            docs.append(cur)
    return docs


def _docs_from_file(path: Path, split: str = "auto") -> list[str]:
    if path.suffix == ".txt":
        return split_documents(_read_text(path), split)
    if path.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(_read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                text = rec["text"]
                if not isinstance(text, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"{path}:{i}: expected a JSON object with a string 'text' key") from None
            if text.strip():
                docs.append(text)
        return docs
    raise UsageError(f"corpus file {path} must end in .txt or .jsonl")


def python_docs(max_files: int | None = None) -> list[str]:
    """Docstrings of the running Python's standard library, one document per module, sorted.

    max_files limits how many source files are read (tests); None reads them all.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {
        "test",
        "tests",
        "idlelib",
        "site-packages",
        "dist-packages",
        "lib2to3",
        "turtledemo",
        "tkinter",
        "ensurepip",
        "__pycache__",
        "config-3",
    }
    docs = []
    files = [
        p
        for p in sorted(root.rglob("*.py"))
        if not any(part in skip or part.startswith("config-") for part in p.relative_to(root).parts)
    ]
    for path in files[:max_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        parts = []
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40 and doc not in parts:
                    parts.append(doc)
        text = "\n\n".join(parts)
        if len(text) >= 200:
            docs.append(text)
    return docs


def load_corpus(spec: str, split: str = "auto") -> Corpus:
    """`bundled`, `python-docs`, a .txt/.jsonl file or a directory of them (.txt files cut into documents by
    split_documents' rule `split`; a .jsonl line is one document)."""
    if spec == "bundled":
        files = sorted((DATA_DIR / "corpus").glob("*.txt"))
        return Corpus.of("bundled", [f.read_text(encoding="utf-8") for f in files])
    if spec == "python-docs":
        return Corpus.of(f"python-docs-{sys.version_info.major}.{sys.version_info.minor}", python_docs())
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(
            f"corpus '{spec}' not found: give {' or '.join(BUILTIN_CORPORA)}, a .txt/.jsonl file or a directory of them"
        )
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl")) if path.is_dir() else [path]
    docs = [d for f in files for d in _docs_from_file(f, split)]
    if not docs:
        raise UsageError(f"corpus '{spec}' holds no text; give non-empty UTF-8 .txt or .jsonl files")
    return Corpus.of(str(path), docs)


def load_open_prompts(spec: str) -> PromptSet:
    """`bundled` (harness/data/open_prompts.jsonl, scripts/make_open_prompts.py), `none`, or a .jsonl file of
    {"id", "prompt"} lines: open prompts without reference answers, generated for the degeneration gates."""
    if spec == "none":
        return PromptSet("none", (), _sha([]))
    ps = load_prompts(str(DATA_DIR / "open_prompts.jsonl") if spec == "bundled" else spec)
    with_refs = [p.id for p in ps.prompts if p.references]
    if with_refs:
        raise UsageError(
            f"open prompt file {spec} gives reference answers ({', '.join(with_refs[:3])}); open "
            f"prompts have none: put prompts with answers in --prompts"
        )
    return PromptSet("bundled" if spec == "bundled" else ps.name, ps.prompts, ps.sha256)


def load_prompts(spec: str) -> PromptSet:
    """`bundled` or a .jsonl file of {"id", "prompt", "references"?} lines."""
    path = DATA_DIR / "prompts.jsonl" if spec == "bundled" else Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"prompt file '{spec}' not found: give 'bundled' or a .jsonl file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"prompt file {path} is not UTF-8; re-encode it as UTF-8") from None
    prompts, seen = [], set()
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError as e:
            raise UsageError(
                f'{path}:{i}: malformed JSON line ({e}); expected {{"id": ..., "prompt": ..., "references": [...]}}'
            ) from None
        pid, prompt, refs = rec.get("id"), rec.get("prompt"), rec.get("references", [])
        if not isinstance(prompt, str) or not prompt.strip():
            raise UsageError(f"{path}:{i}: 'prompt' must be a non-empty string")
        if not isinstance(refs, list) or not all(isinstance(r, str) and r.strip() for r in refs):
            raise UsageError(f"{path}:{i}: 'references' must be a list of non-empty strings")
        pid = str(pid if pid is not None else i)
        if pid in seen:
            raise UsageError(f"{path}:{i}: duplicate prompt id '{pid}'")
        seen.add(pid)
        prompts.append(Prompt(pid, prompt, tuple(refs), bool(rec.get("long", False))))
    if not prompts:
        raise UsageError(f"prompt file {path} holds no prompts")
    name = "bundled" if spec == "bundled" else str(path)
    return PromptSet(name, tuple(prompts), _sha([p.__dict__ for p in prompts]))
