"""Files on disk: cache root, atomic writes, locks and the run index (index.jsonl).

Everything written here is either complete or absent: files and directories are
built under a temporary name and renamed into place; index lines are appended
whole under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from harness.errors import QuantsinkWarning, UsageError
from harness.system.environment import env as qs_env


def cache_root() -> Path:
    """Cache directory: $QS_CACHE_DIR, else $XDG_CACHE_HOME/quantsink, else ~/.cache/quantsink."""
    env = qs_env("QS_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "quantsink"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive advisory lock (fcntl) held for the block; the lock file stays behind, empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@functools.cache
def _umask() -> int:
    """The process's umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ensure_writable_dir(path: str | Path, flag: str) -> Path:
    """path as a directory this process can write in, or could create, or a UsageError naming the flag: found
    before anything is measured, never after. A missing directory is not created here (a run that then stops on
    a usage error leaves nothing behind): its nearest existing ancestor must be a writable directory."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {p} is a file, not a directory; give a directory for the runs")
    probe_dir = p
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise UsageError(f"{flag} {p}: {probe_dir} is a file, not a directory; give a directory for the runs")
    try:
        fd, probe = tempfile.mkstemp(prefix=".quantsink-write-check.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(
            f"{flag} {p} is not writable ({e.strerror or type(e).__name__}); give a directory you can write to"
        ) from None
    return p


@contextlib.contextmanager
def atomic_dir(target: Path):
    """Yield a temporary sibling directory; rename it to target only if the block succeeds. The directory gets
    the permissions of a plain mkdir under the process's umask (mkdtemp makes it 0700: teammates could not read a
    shared report directory)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file via a temporary sibling, fsync and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file reads like any other
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line whole, under a lock, with a single write() and fsync."""
    line = json.dumps(record, sort_keys=True) + "\n"
    with file_lock(path.with_name(path.name + ".lock")):
        # a previous writer killed mid-line leaves no newline: start on a fresh line
        needs_nl = path.exists() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (("\n" if needs_nl else "") + line).encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def read_lines(path: Path) -> list[dict]:
    """Read a JSONL file; a malformed (e.g. truncated) line is skipped with a warning."""
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            warnings.warn(
                f"{path}:{i}: skipping a malformed line (truncated or not JSON)", QuantsinkWarning, stacklevel=2
            )
    return out


def cache_get(path: Path):
    """A JSON cache entry's payload, or None if absent; a hash mismatch is reported and dropped."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        body = json.dumps(rec["payload"], sort_keys=True)
        ok = hashlib.sha256(body.encode()).hexdigest() == rec["sha256"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        ok = False
    if not ok:
        warnings.warn(
            f"cache entry {path} is corrupt (content hash mismatch): rebuilding it", QuantsinkWarning, stacklevel=2
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    return rec["payload"]


def cache_put(path: Path, payload) -> None:
    """Write a JSON cache entry with the sha256 of its payload, atomically."""
    body = json.dumps(payload, sort_keys=True)
    atomic_write(path, json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "payload": payload}))


MANIFEST = "quantsink_manifest.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(d: Path) -> None:
    """Record size and sha256 of every file under d (the entry's content hash)."""
    files = {
        str(p.relative_to(d)): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    atomic_write(d / MANIFEST, json.dumps({"files": files}, indent=1))


def verify_manifest(d: Path, full: bool) -> str | None:
    """None if d matches its manifest, else what is wrong. full: compare sha256, not only sizes."""
    try:
        files = json.loads((d / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable manifest"
    for rel, meta in files.items():
        p = d / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != meta["size"]:
            return f"{rel} has {p.stat().st_size} bytes, expected {meta['size']}"
        if full and file_sha256(p) != meta["sha256"]:
            return f"{rel} content hash does not match"
    return None


def cached_dir(target: Path, build, full_check: bool = True) -> bool:
    """Make sure the cache directory `target` exists whole: build(tmp_dir) when absent or corrupt.

    Returns True on a cache hit. A corrupt entry (manifest mismatch) is reported and rebuilt.
    """
    with file_lock(target.with_name(target.name + ".lock")):
        if target.is_dir():
            problem = verify_manifest(target, full_check)
            if problem is None:
                return True
            warnings.warn(f"cache entry {target} is corrupt ({problem}): rebuilding it", QuantsinkWarning, stacklevel=2)
            shutil.rmtree(target)
        with atomic_dir(target) as tmp:
            build(tmp)
            write_manifest(tmp)
        return False
