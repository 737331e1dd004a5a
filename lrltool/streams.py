"""Open inputs and outputs the one way lrltool does it.

- ``-`` is stdin/stdout. Reading detects zstd and gzip by magic bytes (a pipe has no suffix); writing
  compresses by suffix (``.zst``, ``.gz``).
- JSONL is read with ``jsonlines`` (orjson as its ``loads``) and yields records with their line numbers;
  a bad line raises :class:`InputError` naming the file and line, or is counted with ``--skip-bad-lines``.
- Output files are written under a temporary name in the same folder and renamed on success, so a failed
  or interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import jsonlines
import orjson
import zstandard

from lrltool.errors import InputError, LrlError, UsageError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20

Record = dict[str, Any]


def display_name(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


# ---------------------------------------------------------------------------------------------------
# Reading


class _DecompressingReader(io.RawIOBase):
    """Streaming decompression across frames/members that notices a truncated last one.

    One loop for zstd and gzip: both decompressor objects expose ``decompress``, ``eof`` and
    ``unused_data``. ``zstandard``'s own ``stream_reader`` returns a short read, not an error, when the
    input ends mid-frame, and ``gzip.GzipFile`` is slower than zlib driven directly; a truncated download
    must not pass as a shorter data set.
    """

    def __init__(self, raw: BinaryIO, name: str, kind: str) -> None:
        self._raw = raw
        self._name = name
        self._kind = kind
        if kind == "zstd":
            dctx = zstandard.ZstdDecompressor()
            self._new = dctx.decompressobj
            self._errors: tuple[type[Exception], ...] = (zstandard.ZstdError,)
        else:
            self._new = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
            self._errors = (zlib.error,)
        self._dobj = self._new()
        self._frame_open = False
        self._buffer = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buffer and not self._eof:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                self._eof = True
                if self._frame_open:
                    raise InputError(
                        f"the {self._kind} stream ends early (truncated file)",
                        hint="download or write the file again",
                        path=self._name,
                    )
                return
            out = []
            while chunk:
                try:
                    out.append(self._dobj.decompress(chunk))
                except self._errors as exc:
                    raise InputError(
                        f"not a valid {self._kind} stream ({exc})",
                        hint=f"check that the file is a complete {self._kind} file",
                        path=self._name,
                    ) from exc
                self._frame_open = not self._dobj.eof
                if self._dobj.eof:
                    chunk = self._dobj.unused_data
                    self._dobj = self._new()
                else:
                    chunk = b""
            self._buffer = memoryview(b"".join(out))

    def readinto(self, b: Any) -> int:
        self._fill()
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]  # a view: no copy of the rest
        return n


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, AttributeError):  # closed or replaced stdin
        return False


#: Plain-text input: one text record per line (``{"id": "<line>", "text": ...}``, blank lines skipped).
TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.zst")
INPUT_FORMATS = ("jsonl", "text")
#: ``--input-format`` of the running command, for input whose name does not say (stdin); None: by name.
input_format: str | None = None


def is_text_input(path: str | os.PathLike[str]) -> bool:
    """Plain text (one record per line) rather than JSONL: a ``.txt`` name; a ``.jsonl`` name never;
    any other name (stdin among them) with ``--input-format text``."""
    name = str(path).lower()
    if name.endswith(TEXT_SUFFIXES):
        return True
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")):
        return False
    return input_format == "text"


class InputStream:
    """A binary input: the raw file (for progress by compressed bytes) and the decompressed stream."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = display_name(path)
        if str(path) == "-":
            if _stdin_is_terminal():
                raise UsageError(
                    "this command reads records from stdin, but stdin is a terminal (nothing piped in)",
                    hint="give the input file, or pipe records in: ... | lrltool <command>",
                )
            raw: BinaryIO = sys.stdin.buffer
            self.size: int | None = None
        else:
            p = Path(path)
            if p.is_dir():
                raise InputError("expected a file, found a folder", hint="name a file", path=str(p))
            try:
                raw = open(p, "rb")  # noqa: SIM115 - closed in close()
            except FileNotFoundError:
                raise InputError("no such file", hint="check the path", path=str(p)) from None
            except PermissionError:
                raise InputError("cannot read the file (permission denied)", path=str(p)) from None
            self.size = p.stat().st_size
        self.raw = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
        head = self.raw.peek(4)[:4]
        if head.startswith(ZSTD_MAGIC):
            self.compression = "zstd"
            self.stream: IO[bytes] = io.BufferedReader(
                _DecompressingReader(self.raw, self.name, "zstd"), CHUNK
            )
        elif head.startswith(GZIP_MAGIC):
            self.compression = "gzip"
            self.stream = io.BufferedReader(_DecompressingReader(self.raw, self.name, "gzip"), CHUNK)
        else:
            self.compression = None
            self.stream = self.raw

    def position(self) -> int:
        """Compressed bytes read so far (for progress); 0 on a pipe."""
        try:
            return self.raw.raw.tell() if self.size is not None else 0  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError):
            return 0

    def close(self) -> None:
        if self.raw is not sys.stdin.buffer:
            with contextlib.suppress(Exception):
                self.raw.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def open_text(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a plain, .gz or .zst file (or ``-``) as UTF-8 text, whatever its suffix says."""
    with InputStream(path) as src:
        yield io.TextIOWrapper(src.stream, encoding="utf-8", newline="")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Lines of a plain/.gz/.zst file as ``(line_number, bytes without the newline)``."""
    with InputStream(path) as src:
        for number, line in enumerate(src.stream, 1):
            yield number, line.rstrip(b"\r\n")


def _raise(error: LrlError) -> None:
    raise error


class RecordReader:
    """JSONL records of one file or stdin, with the number of the line each came from.

    Iterating yields dicts. ``line`` is the number of the line last read, so a caller that finds a
    record unusable raises ``InputError`` through :meth:`reject`, which names the file and line, or,
    with ``skip_bad_lines``, counts it as a warning in ``stats`` and lets the caller go on.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "-",
        *,
        skip_bad_lines: bool = False,
        stats: Stats | None = None,
    ) -> None:
        self.path = str(path)
        self.name = display_name(path)
        self.skip_bad_lines = skip_bad_lines
        self.stats = stats
        self.line = 0
        self.warned = 0
        self._source: InputStream | None = None

    def reject(self, error: LrlError) -> None:
        """Raise ``error`` located at the current line, or count it and warn once per kind."""
        error.located(self.name, self.line or None)
        if not self.skip_bad_lines or not isinstance(error, InputError):
            raise error
        if self.stats is not None:
            self.stats.drop("bad_line")
        if self.warned < 5:
            from lrltool import ui

            ui.warn(f"skipped: {error}")
        self.warned += 1

    def position(self) -> int:
        return self._source.position() if self._source else 0

    @property
    def size(self) -> int | None:
        return self._source.size if self._source else None

    def _lines(self, stream: IO[bytes]) -> Iterator[bytes]:
        for self.line, line in enumerate(stream, 1):
            yield line

    def _text_records(self, stream: IO[bytes]) -> Iterator[Record]:
        for line in self._lines(stream):
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                self.reject(InputError("line is not valid UTF-8", hint="save the text file as UTF-8"))
                continue
            if not text.strip():
                continue
            if self.stats is not None:
                self.stats.records_in += 1
            yield {"id": str(self.line), "text": text}

    def __iter__(self) -> Iterator[Record]:
        with InputStream(self.path) as source:
            self._source = source
            if is_text_input(self.path):
                yield from self._text_records(source.stream)
                return
            reader = jsonlines.Reader(self._lines(source.stream), loads=orjson.loads)
            while True:
                try:
                    value = reader.read(skip_empty=True)
                except EOFError:
                    return
                except jsonlines.InvalidLineError as exc:
                    reason = "line is not valid UTF-8" if "utf-8" in str(exc) else "line is not valid JSON"
                    self.reject(InputError(f"{reason}", hint="expected one JSON object per line"))
                    continue
                except LrlError as exc:
                    raise exc.located(self.name, None) from None
                if self.stats is not None:
                    self.stats.records_in += 1
                if not isinstance(value, dict):
                    self.reject(
                        InputError(
                            f"expected a JSON object, found a JSON {type(value).__name__}",
                            hint="write one JSON object per line",
                        )
                    )
                    continue
                yield value


def read_records(
    path: str | os.PathLike[str] = "-", *, skip_bad_lines: bool = False, stats: Stats | None = None
) -> RecordReader:
    return RecordReader(path, skip_bad_lines=skip_bad_lines, stats=stats)


def require(record: Record, key: str, kind: type | tuple[type, ...] = str, *, what: str = "record") -> Any:
    """``record[key]``, or an :class:`InputError` saying what was expected."""
    try:
        value = record[key]
    except KeyError:
        raise InputError(
            f"{what} has no '{key}' key",
            hint=f"each line must be a JSON object with a '{key}' field",
        ) from None
    if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(
            f"{what} field '{key}' is {type(value).__name__}, expected {names}",
            hint=f"write '{key}' as a JSON {names}",
        )
    return value


# ---------------------------------------------------------------------------------------------------
# Batched reading: the fast path for commands whose cost per record matters (cap). The batches are
# plain bytes, so worker processes can parse them; line numbers and error messages are RecordReader's.

_SKIPPABLE_PREFIXES = (b"\x1e", b"\xef\xbb\xbf")  # RFC 7464 record separator, UTF-8 BOM (as jsonlines)


class LineBatchReader:
    """Whole lines of one file or stdin in batches of about ``batch_bytes``, with their first line's number.

    Iterating yields ``(first_line_number, data)``, ``data`` ending at a line end (or at the end of the
    input). :func:`parse_jsonl_lines` turns a batch into JSON values; ``position``/``size`` serve progress.
    """

    def __init__(self, path: str | os.PathLike[str] = "-", *, batch_bytes: int = 4 * CHUNK) -> None:
        self.path = str(path)
        self.name = display_name(path)
        self.batch_bytes = batch_bytes
        self._source: InputStream | None = None

    def position(self) -> int:
        return self._source.position() if self._source else 0

    @property
    def size(self) -> int | None:
        return self._source.size if self._source else None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        with InputStream(self.path) as source:
            self._source = source
            line = 1
            rest = b""
            while True:
                chunk = source.stream.read(self.batch_bytes)
                if not chunk:
                    if rest:
                        yield line, rest
                    return
                data = rest + chunk if rest else chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a batch: keep reading
                    rest = data
                    continue
                batch, rest = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
                yield line, batch
                line += batch.count(b"\n")


def invalid_line_error(reason: str) -> InputError:
    """The error for a line that does not decode as JSON (``reason``: the decoder's message)."""
    # orjson says "str is not valid UTF-8" for bytes that do not decode (jsonlines: "not valid utf-8").
    what = "line is not valid UTF-8" if "not valid utf-8" in reason.lower() else "line is not valid JSON"
    return InputError(what, hint="expected one JSON object per line")


def not_an_object_error(value: Any) -> InputError:
    """The error for a line that holds JSON, but not an object."""
    return InputError(
        f"expected a JSON object, found a JSON {type(value).__name__}",
        hint="write one JSON object per line",
    )


def parse_jsonl_lines(data: bytes, first_line: int = 1) -> Iterator[tuple[int, Any]]:
    """``(line number, JSON value)`` for each non-blank line of ``data`` (a batch of whole lines).

    A line that does not decode gives an unlocated :class:`InputError` as its value, with the message
    :class:`RecordReader` gives (``null`` counts as undecodable, as in jsonlines); a value that is not an
    object is returned as is (the caller raises :func:`not_an_object_error`).
    """
    loads = orjson.loads
    for number, line in enumerate(data.split(b"\n"), first_line):
        if not line or line.isspace():
            continue
        if line.startswith(_SKIPPABLE_PREFIXES):
            line = line[3:] if line[0] == 0xEF else line[1:]
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, invalid_line_error(str(exc))
            continue
        if value is None:
            yield number, invalid_line_error("null")
            continue
        yield number, value


# ---------------------------------------------------------------------------------------------------
# Writing


class AtomicFile:
    """A file written under a temporary name in its folder and renamed into place by ``commit``."""

    def __init__(self, path: str | os.PathLike[str], *, zstd_level: int = 3, zstd_threads: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        suffix = self.path.suffix
        self._inner: IO[bytes] | None = None
        if suffix == ".zst":
            cctx = zstandard.ZstdCompressor(level=zstd_level, threads=zstd_threads)
            self._inner = cctx.stream_writer(self._file, closefd=False)  # type: ignore[assignment]
        elif suffix == ".gz":
            self._inner = gzip.GzipFile(fileobj=self._file, mode="wb", mtime=0)
        self.stream: IO[bytes] = self._inner if self._inner is not None else self._file  # type: ignore[assignment]

    def commit(self) -> None:
        if self._inner is not None:
            self._inner.close()
        self._file.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._inner is not None:
                self._inner.close()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class _Stdout:
    def __init__(self) -> None:
        self.stream = sys.stdout.buffer

    def commit(self) -> None:
        self.stream.flush()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.flush()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str] = "-", **zstd: int) -> Iterator[IO[bytes]]:
    """A binary stream to ``path`` (``-`` = stdout), compressed by suffix, renamed on success only."""
    target: AtomicFile | _Stdout = _Stdout() if str(path) == "-" else AtomicFile(path, **zstd)
    try:
        yield target.stream
    except BaseException:
        target.discard()
        raise
    target.commit()


class RecordWriter:
    """Writes records as JSONL (orjson) to a binary stream and counts them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._writer = jsonlines.Writer(stream, dumps=orjson.dumps, flush=False)
        self.count = 0

    def write(self, record: Record) -> None:
        self._writer.write(record)
        self.count += 1

    def write_all(self, records: Iterable[Record]) -> int:
        for record in records:
            self.write(record)
        return self.count


@contextlib.contextmanager
def write_records(path: str | os.PathLike[str] = "-", **zstd: int) -> Iterator[RecordWriter]:
    """Write JSONL records to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, **zstd) as stream:
        yield RecordWriter(stream)


@contextlib.contextmanager
def write_record_files(paths: dict[str, Path], **zstd: int) -> Iterator[dict[str, RecordWriter]]:
    """Several JSONL outputs that appear together on success and not at all on failure."""
    files = {key: AtomicFile(path, **zstd) for key, path in paths.items()}
    try:
        yield {key: RecordWriter(f.stream) for key, f in files.items()}
    except BaseException:
        for f in files.values():
            f.discard()
        raise
    for f in files.values():
        f.commit()


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write one indented JSON document atomically."""
    with atomic_output(path) as stream:
        stream.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an old one only once the new one is complete."""
    os.chmod(tmp, 0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill: it replaces ``path`` on success, is removed on failure."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Summaries


class Stats:
    """Counts of one streaming command: records in and out, dropped by reason, extra figures."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.records_in = 0
        self.records_out = 0
        self.dropped: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "dropped": dict(sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
            **self.extra,
        }

    def line(self) -> str:
        text = f"{self.command}: {self.records_in:,} in, {self.records_out:,} out"
        if self.dropped:
            parts = ", ".join(f"{reason} {n:,}" for reason, n in self.as_dict()["dropped"].items())
            text += f"; dropped {sum(self.dropped.values()):,} ({parts})"
        for key, value in self.extra.items():
            if isinstance(value, (int, float, str)):
                text += f"; {key} {value:,}" if isinstance(value, int) else f"; {key} {value}"
        return text

    def finish(self, stats_path: str | os.PathLike[str] | None = None) -> None:
        """Print the one-line summary to stderr and write it as JSON if asked."""
        from lrltool import ui

        ui.info(self.line())
        if stats_path is not None:
            write_json(stats_path, self.as_dict())


RejectFn = Callable[[LrlError], None]
