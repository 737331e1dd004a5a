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
import errno
import functools
import gzip
import hashlib
import io
import os
import queue
import shutil
import stat
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

import jsonlines
import orjson
import zstandard
from isal import igzip, isal_zlib

from lrltool.errors import InputError, LrlError, OutputError, UsageError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
#: Decompressed bytes per block of a gzip input.
GZIP_BLOCK = 4 << 20
#: Compressed inputs: blocks (of CHUNK compressed bytes) decompressed ahead of the reader by a thread.
READ_AHEAD = 2

Record = dict[str, Any]


def display_name(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def input_size(path: str | os.PathLike[str]) -> int | None:
    """An input's size in bytes, for progress; None for stdin or what is not a readable regular file (its
    error comes from reading it)."""
    if str(path) == "-":
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


# ---------------------------------------------------------------------------------------------------
# Reading


class _DecompressingReader(io.RawIOBase):
    """Streaming decompression across frames/members that notices a truncated last one.

    zstd is driven frame by frame here: ``zstandard``'s own ``stream_reader`` returns a short read, not an
    error, when the input ends mid-frame, and a truncated download must not pass as a shorter data set.
    gzip goes through ISA-L's reader (python-isal's ``igzip``), which raises on a truncated member and
    inflates 5x faster than ``gzip``/zlib (benchmarks/README.md "fetch").

    With ``read_ahead``, a background thread reads and decompresses up to ``read_ahead`` blocks ahead of
    the reader (both libraries release the GIL while they decompress), so decompression overlaps with
    whatever the reader does with the data; errors reach the reader at the point of the stream where
    they occurred.
    """

    def __init__(self, raw: BinaryIO, name: str, kind: str, *, read_ahead: int = 0) -> None:
        self._raw = raw
        self._name = name
        self._kind = kind
        self._new = zstandard.ZstdDecompressor().decompressobj  # zstd; gzip: _gunzipped
        self._errors: tuple[type[Exception], ...] = (zstandard.ZstdError,)
        self._read_ahead = read_ahead
        self._source: Iterator[bytes] | None = None
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _decompressed(self) -> Iterator[bytes]:
        """The decompressed data, one block per compressed chunk read (blocks are never empty)."""
        if self._kind == "gzip":
            yield from self._gunzipped()
            return
        dobj = self._new()
        frame_open = False
        while chunk := self._raw.read(CHUNK):
            out = []
            while chunk:
                try:
                    out.append(dobj.decompress(chunk))
                except self._errors as exc:
                    raise InputError(
                        f"not a valid {self._kind} stream ({exc})",
                        hint=f"check that the file is a complete {self._kind} file",
                        path=self._name,
                    ) from exc
                frame_open = not dobj.eof
                if dobj.eof:
                    chunk = dobj.unused_data
                    dobj = self._new()
                else:
                    chunk = b""
            data = out[0] if len(out) == 1 else b"".join(out)
            if data:
                yield data
        if frame_open:
            raise InputError(
                f"the {self._kind} stream ends early (truncated file)",
                hint="download or write the file again",
                path=self._name,
            )

    def _gunzipped(self) -> Iterator[bytes]:
        """gzip through ISA-L's own reader (``isal.igzip``, members, CRC and length checked in C): blocks
        of ``GZIP_BLOCK`` bytes, twice as fast as driving ``isal_zlib.decompressobj`` from Python and
        releasing the GIL while it inflates (benchmarks/README.md "fetch")."""
        try:
            with igzip.GzipFile(fileobj=self._raw, mode="rb") as gz:
                while data := gz.read(GZIP_BLOCK):
                    yield data
        except EOFError:
            raise InputError(
                "the gzip stream ends early (truncated file)",
                hint="download or write the file again",
                path=self._name,
            ) from None
        except (isal_zlib.error, igzip.BadGzipFile) as exc:
            raise InputError(
                f"not a valid gzip stream ({exc})",
                hint="check that the file is a complete gzip file",
                path=self._name,
            ) from exc

    def blocks(self) -> Iterator[bytes]:
        """The decompressed data in the blocks it comes in (no copy); use this or ``read``, not both."""
        if self._source is None:
            source = self._decompressed()
            self._source = _ReadAhead(source, self._read_ahead) if self._read_ahead else source
        return self._source

    def readinto(self, b: Any) -> int:
        if not self._buffer:
            self._buffer = memoryview(next(self.blocks(), b""))
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]  # a view: no copy of the rest
        return n

    #: The read-ahead thread did not stop (it is blocked reading a stalled pipe and holds the file's lock).
    stuck = False

    def close(self) -> None:
        if isinstance(self._source, _ReadAhead):
            self.stuck = not self._source.close()
        super().close()


_END = object()


class _ReadAhead:
    """An iterator run by a background thread at most ``depth`` items ahead of its consumer.

    The thread's exception is raised by the consumer's ``next`` once the items before it are consumed;
    ``close`` stops the thread (the thread is a daemon: a read blocked on a pipe never holds up exit).
    """

    def __init__(self, source: Iterator[bytes], depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(source,), name="lrltool-read-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, source: Iterator[bytes]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> _ReadAhead:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END or isinstance(item, BaseException):
            self._done = True
            if item is _END:
                raise StopIteration
            raise item
        return item

    def close(self) -> bool:
        """Stop the thread; whether it stopped (a thread blocked in a read stops only when the read ends)."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        return not self._thread.is_alive()


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


def text_line_record(number: int, line: bytes) -> Record | InputError | None:
    """The text record of plain-text line ``number`` (``{"id": "<number>", "text": line}``), None for a
    blank line (skipped, as run_mlm.py's line-by-line reading does), an unlocated InputError for a line
    that is not UTF-8. The one rule for every command that reads plain text (RecordReader, cap's batches)."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return InputError("line is not valid UTF-8", hint="save the text file as UTF-8")
    if not text.strip():
        return None
    return {"id": str(number), "text": text}


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
    """A binary input: the raw file (for progress by compressed bytes) and the decompressed stream.

    Read it through ``stream`` (a buffered binary file) or ``blocks()`` (the decompressed data as it
    comes, without copies: the fast path of scanners such as ``fetch conceptnet``), not both.
    ``read_ahead`` blocks of a compressed input are decompressed ahead by a background thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_ahead: int = READ_AHEAD) -> None:
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
        self._reader: _DecompressingReader | None = None
        if head.startswith(ZSTD_MAGIC):
            self.compression: str | None = "zstd"
        elif head.startswith(GZIP_MAGIC):
            self.compression = "gzip"
        else:
            self.compression = None
        if self.compression is None:
            self.stream: IO[bytes] = self.raw
        else:
            self._reader = _DecompressingReader(self.raw, self.name, self.compression, read_ahead=read_ahead)
            self.stream = io.BufferedReader(self._reader, CHUNK)

    def blocks(self) -> Iterator[bytes]:
        """The decompressed data in blocks of varying size (about 1-10 MB), as the decompressor gives them."""
        if self._reader is not None:
            return self._reader.blocks()
        return iter(lambda: self.raw.read(4 * CHUNK), b"")

    def position(self) -> int:
        """Compressed bytes read so far (for progress); 0 on a pipe."""
        try:
            return self.raw.raw.tell() if self.size is not None else 0  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError):
            return 0

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # stops the read-ahead thread before its file is closed
            if self._reader.stuck:  # closing would wait for its read forever: the process exit closes it
                return
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
            record = text_line_record(self.line, line)
            if isinstance(record, InputError):
                self.reject(record)
                continue
            if record is None:
                continue
            if self.stats is not None:
                self.stats.records_in += 1
            yield record

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


def parse_text_lines(data: bytes, first_line: int = 1) -> Iterator[tuple[int, Any]]:
    """``(line number, text record)`` for each non-blank line of ``data`` (a batch of whole plain-text
    lines), as :func:`parse_jsonl_lines` gives JSON values: an unlocated InputError for a non-UTF-8 line."""
    for number, line in enumerate(data.split(b"\n"), first_line):
        value = text_line_record(number, line)
        if value is not None:
            yield number, value


# ---------------------------------------------------------------------------------------------------
# Writing
#
# Every output is written under a temporary name beside its target and renamed into place once complete.
# Exceptions, each on purpose: a symlink is followed (its target is replaced atomically, the link stays);
# a character device or a named pipe (/dev/null, a FIFO a reader waits on) is written directly, streaming,
# since there is nothing to rename; sockets, block devices and folders are refused. A replaced file keeps
# its mode (and owner where the process may set it); a new one gets 0666 less the umask, as open() gives.
# Missing folders above an output are made for it, and removed again, where still empty, when it fails.

#: errno -> (what happened, what to do): the cause of a failed write that a person can act on.
_WRITE_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full (no space left on device)", "free some space, or write elsewhere"),
    errno.EDQUOT: ("the disk quota is used up", "free some space, or write elsewhere"),
    errno.EROFS: ("the file system is read-only", "write elsewhere"),
    errno.EACCES: ("permission denied", "write to a folder you may write to"),
    errno.EPERM: ("permission denied", "write to a folder you may write to"),
    errno.EFBIG: ("the file is too large for this file system (or ulimit -f)", "write elsewhere"),
}
# Writers that raise something else than OSError (torch.save's inline_container.cc, safetensors' Rust
# io::Error) say the cause in their message.
_WRITE_ERROR_TEXTS = (
    ("no space left on device", errno.ENOSPC),
    ("storagefull", errno.ENOSPC),
    ("os error 28", errno.ENOSPC),
    ("read-only file system", errno.EROFS),
    ("readonlyfilesystem", errno.EROFS),
    ("os error 30", errno.EROFS),
    ("disk quota exceeded", errno.EDQUOT),
    ("permission denied", errno.EACCES),
)


#: Folders this process made for its outputs (``_make_folders``), removed again by ``_unmake_folders``
#: while empty: a failed output leaves no empty folder behind either.
_MADE_FOLDERS: set[Path] = set()


def _make_folders(folder: Path) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, noting in ``_MADE_FOLDERS`` each folder it made."""
    folder = Path(os.path.abspath(folder))
    missing = []
    for above in (folder, *folder.parents):
        if os.path.lexists(above):
            break
        missing.append(above)
    folder.mkdir(parents=True, exist_ok=True)
    _MADE_FOLDERS.update(missing)


def _unmake_folders(folder: Path) -> None:
    """Remove ``folder`` and the folders above it that ``_make_folders`` made, deepest first, while they
    are empty (another output's file in one keeps it and those above)."""
    folder = Path(os.path.abspath(folder))
    for above in (folder, *folder.parents):
        if above not in _MADE_FOLDERS:
            return
        try:
            above.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return
        _MADE_FOLDERS.discard(above)


def check_writable(path: str | os.PathLike[str] | None) -> None:
    """Refuse now (the OutputError an atomic write would raise: disk full, read-only, no permission) an
    output that could not be written, so that a long computation does not end in a lost result. Creates
    and removes a temporary file where :class:`AtomicFile` would (through a symlink), and the missing
    folders it made for it; stdout, devices and FIFOs are written directly and are not tried."""
    if path is None or str(path) == "-":
        return
    target, existing = _resolve_target(Path(path))
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        return
    try:
        _make_folders(target.parent)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            os.unlink(tmp)
        finally:
            _unmake_folders(target.parent)
    except OSError as exc:
        raise (write_error(exc, path) or exc) from None


def write_error(exc: BaseException, path: str | os.PathLike[str]) -> OutputError | None:
    """The one-line :class:`OutputError` for a write to ``path`` that failed with ``exc`` (a full disk, a
    read-only file system, no permission), or None when ``exc`` is not such a failure.

    torch.save reports a full disk as "PytorchStreamWriter failed writing file ...: file write failed"
    without the cause: for such messages the free space of ``path``'s file system decides.
    """
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and not isinstance(exc, LrlError):
        text = str(exc).lower()
        code = next((c for marker, c in _WRITE_ERROR_TEXTS if marker in text), None)
        if code is None and "write" in text and _disk_is_full(Path(path)):
            code = errno.ENOSPC
    if code not in _WRITE_ERRORS:
        return None
    what, hint = _WRITE_ERRORS[code]
    return OutputError(f"cannot write: {what}", hint=hint, path=str(path))


def _disk_is_full(path: Path) -> bool:
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return os.statvfs(folder).f_bavail == 0
            except OSError:
                return False
    return False


def _own_write_error(exc: BaseException, names: Iterable[str | os.PathLike[str] | None]) -> bool:
    """Whether an OSError came from writing one of ``names`` (a write on a file object names no file)."""
    if not isinstance(exc, OSError):
        return False
    return exc.filename is None or str(exc.filename) in {str(n) for n in names if n is not None}


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def _resolve_target(path: Path) -> tuple[Path, os.stat_result | None]:
    """The file to write for ``-o path`` (a symlink's final target) and its stat (None if it is new)."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        info = os.stat(target)
    except OSError:
        return target, None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError("the output is a folder, not a file", hint="name a file", path=str(path))
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise UsageError(
            "the output is neither a file, a character device nor a named pipe",
            hint="name a file",
            path=str(path),
        )
    return target, info


class AtomicFile:
    """A file written under a temporary name in its folder and renamed into place by :meth:`commit`.

    See "Writing" above for symlinks, devices and pipes, and modes. :meth:`finish` completes the
    temporary file (the step that can fail for a full disk), :meth:`publish` renames it: outputs that
    must appear together finish all, then publish all. Failures to write raise :class:`OutputError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, zstd_level: int = 3, zstd_threads: int = 0) -> None:
        self.path = Path(path)
        self.target, existing = _resolve_target(self.path)
        self.direct = existing is not None and not stat.S_ISREG(existing.st_mode)
        self.tmp: Path | None = None
        regular = existing is not None and not self.direct
        self._mode = stat.S_IMODE(existing.st_mode) if regular else 0o666 & ~_umask()  # type: ignore[union-attr]
        self._owner = (existing.st_uid, existing.st_gid) if regular else None  # type: ignore[union-attr]
        try:
            if self.direct:
                self._file: IO[bytes] = open(self.target, "wb")  # noqa: SIM115 - closed in finish()
            else:
                _make_folders(self.target.parent)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent
                )
                self.tmp = Path(tmp)
                self._file = os.fdopen(fd, "wb")
        except OSError as exc:
            if not self.direct:
                _unmake_folders(self.target.parent)
            raise (write_error(exc, self.path) or exc) from None
        self._inner: IO[bytes] | None = None
        suffix = self.path.suffix
        if suffix == ".zst":
            cctx = zstandard.ZstdCompressor(level=zstd_level, threads=zstd_threads)
            # Buffered: one compressor call per CHUNK, not one per record (closing ends the frame).
            compressing = cctx.stream_writer(self._file, closefd=False)
            self._inner = io.BufferedWriter(compressing, CHUNK)  # type: ignore[arg-type]
        elif suffix == ".gz":
            self._inner = gzip.GzipFile(fileobj=self._file, mode="wb", mtime=0)
        self.stream: IO[bytes] = self._inner if self._inner is not None else self._file

    def finish(self) -> None:
        """Flush and close the file (compressed streams end their frame), with its final mode."""
        if self._inner is not None:
            self._inner.close()
        if not self.direct:
            os.fchmod(self._file.fileno(), self._mode)
            if self._owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(self._file.fileno(), *self._owner)
        self._file.close()

    def publish(self) -> None:
        """Rename the finished file over the target (nothing to do for a device or pipe)."""
        if self.tmp is not None:
            os.replace(self.tmp, self.target)
            self.tmp = None

    def commit(self) -> None:
        try:
            self.finish()
            self.publish()
        except BaseException as exc:
            self.discard()
            if _own_write_error(exc, (self.path, self.tmp, self.target)):
                raise (write_error(exc, self.path) or exc) from None
            raise

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._inner is not None:
                self._inner.close()
        with contextlib.suppress(Exception):
            self._file.close()
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
        if not self.direct:
            _unmake_folders(self.target.parent)


class _Stdout:
    """Data to stdout through a buffer of its own (CHUNK bytes): with ``PYTHONUNBUFFERED`` (``python -u``,
    set in many container images) ``sys.stdout.buffer`` is the bare file and each record cost two system
    calls (a third of ``fetch conceptnet``'s time here). The buffer wraps file descriptor 1 without owning
    it; a replaced ``sys.stdout`` without a descriptor (a test runner's) is written directly."""

    path = "<stdout>"

    def __init__(self) -> None:
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            self.stream: IO[bytes] = sys.stdout.buffer
            return
        sys.stdout.flush()
        self.stream = io.BufferedWriter(io.FileIO(fd, "wb", closefd=False), CHUNK)

    def commit(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise (write_error(exc, self.path) or exc) from None

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.flush()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str] = "-", **zstd: int) -> Iterator[IO[bytes]]:
    """A binary stream to ``path`` (``-`` = stdout), compressed by suffix, renamed on success only.

    A write that fails for a full disk, a read-only file system or permissions raises OutputError
    naming ``path``; the temporary file is removed whatever fails, the final flush and rename included.
    """
    target: AtomicFile | _Stdout = _Stdout() if str(path) == "-" else AtomicFile(path, **zstd)
    try:
        yield target.stream
        target.commit()
    except BaseException as exc:
        target.discard()
        if _own_write_error(exc, (path, getattr(target, "tmp", None))):
            raise (write_error(exc, target.path) or exc) from None
        raise


class RecordWriter:
    """Writes records as JSONL (orjson, one ``write`` per record: the bytes ``jsonlines.Writer`` with
    orjson writes, in half the calls) to a binary stream and counts them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._write = stream.write
        self.count = 0

    def write(self, record: Record) -> None:
        self._write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
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
def atomic_files(paths: Sequence[Path], **zstd: int) -> Iterator[list[IO[bytes]]]:
    """Several outputs that appear together on success and not at all on failure (each finished before
    any is renamed; a full disk at the end leaves none of them)."""
    files: list[AtomicFile] = []
    try:
        for path in paths:
            files.append(AtomicFile(path, **zstd))
        yield [f.stream for f in files]
        for f in files:
            f.finish()
        for f in files:
            f.publish()
    except BaseException as exc:
        for f in files:
            f.discard()
        own = _own_write_error(exc, [n for f in files for n in (f.path, f.tmp)])
        if own and files:
            raise (write_error(exc, files[0].path.parent) or exc) from None
        raise


@contextlib.contextmanager
def write_record_files(paths: dict[str, Path], **zstd: int) -> Iterator[dict[str, RecordWriter]]:
    """Several JSONL outputs that appear together on success and not at all on failure."""
    with atomic_files(list(paths.values()), **zstd) as streams:
        yield {key: RecordWriter(stream) for key, stream in zip(paths, streams, strict=True)}


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write one indented JSON document atomically."""
    with atomic_output(path) as stream:
        stream.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")


@functools.cache
def _renameat2() -> Any:
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (macOS, musl): no renameat2
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux renameat2 RENAME_EXCHANGE).

    False where the system or file system cannot (the caller falls back to two renames).
    """
    import ctypes

    function = _renameat2()
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``. An old ``out`` is swapped out in one atomic step where
    the system can (renameat2), so that ``out`` is always complete, old or new; elsewhere by two renames.
    The folder keeps an old ``out``'s mode; a new one gets 0777 less the umask."""
    os.chmod(tmp, stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o777 & ~_umask())
    if not os.path.lexists(out):
        os.replace(tmp, out)
    elif exchange(tmp, out):
        _remove(tmp)  # tmp now holds the old one
    else:
        old = out.with_name(f".{out.name}.old")
        _remove(old)
        os.replace(out, old)
        os.replace(tmp, out)
        _remove(old)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill: it replaces ``path`` on success, is removed on failure
    (with the folders above it that were made for it and are still empty).

    A full disk, a read-only file system or missing permissions raise OutputError naming ``path``, also
    from writers that do not raise OSError (safetensors, torch.save).
    """
    out = Path(path)
    try:
        _make_folders(out.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        _unmake_folders(out.parent)
        raise (write_error(exc, out) or exc) from None
    try:
        yield tmp
        replace_dir(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _unmake_folders(out.parent)
        ours = not isinstance(exc, OSError) or exc.filename is None or str(exc.filename).startswith(str(tmp))
        error = write_error(exc, out) if isinstance(exc, Exception) and ours else None
        if error is not None:
            raise error from None
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


def nothing_written(stats: Stats, source: str, what: str) -> InputError:
    """The one rule for empty results: a command that would write no records stops (exit 1, nothing
    written) and says why: no records in ``source``, or none kept (the drop reasons, from ``stats``)."""
    if stats.records_in == 0:
        return InputError(
            f"no records in the input, so no {what} to write", hint="check the input", path=source
        )
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in stats.as_dict()["dropped"].items())
    return InputError(
        f"no {what} to write: {stats.records_in:,} records read, none kept (dropped: {reasons or 'none'})",
        hint="check the input and the options",
        path=source,
    )


RejectFn = Callable[[LrlError], None]
