"""What a file is, from its first bytes and lines, before anything reads it as a log.

A file that is not text we can read line by line is refused with what it is and what to do: compressed
without the name saying so, an archive, UTF-16, a known binary format, or a "line" of megabytes. ``read_head`` gives the
first lines of the rest (and where the first one is, past blank lines); ``check_sequence_fits`` refuses a
file given ``--format sequence`` or ``pairs`` that is not one.
"""

from __future__ import annotations

import functools
import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError

HEAD_BYTES = 1 << 20  # a log line is far shorter; a file without a line end in this much is not a log
HEAD_LINES = 20
MAGIC = [  # (first bytes, what the file is, what to do)
    (b"PK\x03\x04", "a ZIP archive", "extract the log from it and load that"),
    (b"BZh", "bzip2-compressed", "decompress it first (only .gz files are read as they are)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (only .gz files are read as they are)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (only .gz files are read as they are)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the log from it and load that"),
    (b"%PDF", "a PDF document", "export the data as CSV, JSON Lines or Parquet"),
    (b"\x89PNG", "a PNG image", "load a log file"),
    (b"\xff\xd8\xff", "a JPEG image", "load a log file"),
    (b"\x7fELF", "a program (ELF binary)", "load a log file"),
    (b"SQLite format 3", "an SQLite database", "export the table as CSV or Parquet"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file", "save the sheet as CSV (UTF-8)"),
]
UTF_BOMS = [
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
]


@dataclass(frozen=True)
class Head:
    kind: str  # parquet | jsonl | text
    lines: tuple[str, ...]  # the first non-blank lines (BOM and line ends stripped); none for Parquet
    numbers: tuple[int, ...]  # their physical line numbers (blank lines before the header shift them)

    @property
    def first_line_no(self) -> int:
        return self.numbers[0] if self.numbers else 1


def refuse(path: Path, what: str, fix: str) -> InputError:
    return InputError(what, file=str(path), fix=fix)


def read_head(path: Path) -> Head:
    """The file's kind and first lines; an ``InputError`` naming what it is for anything but a Parquet file
    or UTF-8 text with line ends (plain or .gz)."""
    stat = path.stat()
    return _read_head(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _read_head(name: str, _mtime: int, size: int) -> Head:
    path = Path(name)
    with path.open("rb") as f:
        raw = f.read(HEAD_BYTES)
    if raw.startswith(b"PAR1"):
        return Head("parquet", (), ())
    _check_container(path, raw)
    data, complete = _decompressed(path, raw) if path.suffix == ".gz" else (raw, size <= HEAD_BYTES)
    _check_text(path, data)
    text = data.decode("utf-8", errors="replace")
    if not complete and not ("\n" in text or "\r" in text):
        raise refuse(
            path,
            f"has no line end in its first {HEAD_BYTES >> 20} MB: it is not a log with one record per line",
            "export it as CSV or JSON Lines (one record per line), or as Parquet",
        )
    physical = _LINE_ENDS.split(text)  # as DuckDB's line reader splits (not str.splitlines: \f, \x1c…)
    if not complete and physical:
        physical = physical[:-1]  # the last line may be cut at the block's end
    lines, numbers = [], []
    for number, line in enumerate(physical, start=1):
        line = line.lstrip("\ufeff")
        if line.strip():
            lines.append(line)
            numbers.append(number)
        if len(lines) >= HEAD_LINES:
            break
    if not lines:
        raise refuse(path, "the file is empty", "export the log again; it has no rows")
    start = lines[0].lstrip()
    if start.startswith("["):
        raise refuse(
            path, "is one JSON array, not JSON Lines", "write one {…} object per line (JSON Lines), no [ ]"
        )
    return Head("jsonl" if start.startswith("{") else "text", tuple(lines), tuple(numbers))


def _check_container(path: Path, raw: bytes) -> None:
    """Refuse compressed files whose name does not say so (and the reverse), archives and binaries."""
    if raw.startswith(b"\x1f\x8b") and path.suffix != ".gz":
        raise refuse(
            path,
            "is gzip-compressed, but its name does not end in .gz",
            f"rename it to {path.name}.gz (or decompress it)",
        )
    if path.suffix == ".gz" and not raw.startswith(b"\x1f\x8b"):
        raise refuse(path, "is named .gz but is not gzip-compressed", "remove the .gz from its name")
    for magic, what, fix in MAGIC:
        if raw.startswith(magic):
            raise refuse(path, f"is {what}, not a log", fix)


def _decompressed(path: Path, raw: bytes) -> tuple[bytes, bool]:
    """The first ``HEAD_BYTES`` of a .gz file's content, and whether that is all of it."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read(HEAD_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise refuse(path, f"is a damaged gzip file ({exc})", "compress the log again") from exc
    return data[:HEAD_BYTES], len(data) <= HEAD_BYTES


def _check_text(path: Path, data: bytes) -> None:
    """UTF-16/32 (with a byte-order mark, or without: every other byte 0) is refused; UTF-8 passes. NUL
    bytes inside a text line are left to the row checks (that row is rejected)."""
    for bom, name in UTF_BOMS:
        if data.startswith(bom):
            raise refuse(path, f"is {name} text", "save it as UTF-8 (in Excel: CSV UTF-8) and load it again")
    sample = data[:4096]
    if len(sample) >= 16:
        shares = sorted(half.count(0) / len(half) for half in (sample[0::2], sample[1::2]))
        if shares[1] >= 0.7 and shares[0] <= 0.1:
            raise refuse(path, "is UTF-16 text (every other byte is 0)", "save it as UTF-8 and load it again")


_LINE_ENDS = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"[\w.:@-]+")


def is_token(text: str) -> bool:
    """An id as sequence and pairs files write them: letters, digits and . : @ - _"""
    return bool(_TOKEN.fullmatch(text))


def check_sequence_fits(path: Path, fmt: str, head: Head, looks_like: str | None) -> None:
    """Refuse a file given as ``sequence`` (``user item item …``) or ``pairs`` (``user item``) that is not
    one: at least half of its first lines must be ids separated by whitespace (the odd lines are rejected
    rows)."""
    want = "a pairs file (user item)" if fmt == "pairs" else "a sequence file (user item item …)"
    if head.kind != "text":
        raise refuse(
            path, f"is {looks_like or head.kind}, not {want}", "leave out --format to detect the format"
        )
    fitting, first_bad = 0, None
    for number, line in zip(head.numbers, head.lines, strict=True):
        tokens = line.split()
        fits = all(is_token(t) for t in tokens) and (len(tokens) == 2 if fmt == "pairs" else len(tokens) >= 2)
        fitting += fits
        if not fits and first_bad is None:
            first_bad = (number, line)
    if fitting >= 0.5 * len(head.lines):
        return
    number, line = first_bad
    seen = line if len(line) <= 60 else line[:59] + "…"
    guess = f"; it looks like {looks_like}" if looks_like else ""
    raise InputError(
        f"is not {want}: it reads {seen!r}{guess}",
        file=str(path),
        line=number,
        fix="pick the format the file is in, or leave out --format to detect it",
    )
