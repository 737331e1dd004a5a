"""ConceptNet 5.7 assertions -> triple records of one language, streamed at decompression speed.

The published format (confirmed against 756 real rows from the conceptnet5 repository's test data,
``testdata/reference/assertions/assertions.csv``, bundled in examples/conceptnet, and the paper
authors' parser notes on the hub, ``DGurgurov/conceptnet_all``): ``conceptnet-assertions-5.7.0.csv.gz``,
34M lines, 475 MB, downloaded from https://s3.amazonaws.com/conceptnet/downloads/2019/edges/ (not a hub
repository: without ``--input`` it is downloaded once to ``$HF_HOME/lrltool/conceptnet/``). No header;
five tab-separated columns:

    /a/[/r/IsA/,/c/ro/câine/n/,/c/ro/animal/]  /r/IsA  /c/ro/câine/n  /c/ro/animal  {..., "weight": 1.0}

- A node is ``/c/<lang>/<text>[/<pos>[/<source>[/<sense>]]]``; the word is the 4th ``/`` part with ``_``
  -> space (the last part is the POS or a sense such as ``en_1``, not the word). POS is kept.
- ``/r/ExternalURL`` rows link a node to a URL: dropped. Other rows whose node is not ``/c/...``: dropped.
- The JSON column holds ``weight`` (required), ``dataset``, ``surfaceText`` (optional), raw UTF-8.
- Indonesian has no ``id`` nodes in 5.7 (merged into ``ms``); the language table gives ``ms`` for it.

Speed: the dump is read in 4 MiB blocks of decompressed bytes; only lines holding ``<TAB>/c/<code>/``
(a start or end node in the language, found by Hyperscan: :func:`_hit_finder`) are located and parsed,
everything else is counted by numpy (in a thread of its own). A malformed row is therefore only noticed
when it mentions the language.
Several languages take one pass; on Linux its scan runs in a forked process (:func:`_forked_scan`).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import os
import pickle
import re
import signal
import struct
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from lrltool import errors
from lrltool.errors import InputError, LrlError
from lrltool.sources import hub
from lrltool.sources.base import FetchRequest
from lrltool.streams import InputStream, Record, input_size

DUMP_NAME = "conceptnet-assertions-5.7.0.csv.gz"
DUMP_URL = f"https://s3.amazonaws.com/conceptnet/downloads/2019/edges/{DUMP_NAME}"
#: --match: which node languages a kept row has (start, end, wanted code) -> bool.
MATCHES: dict[str, Callable[[str, str, str], bool]] = {
    "start": lambda start, end, code: start == code,
    "either": lambda start, end, code: code in (start, end),
    "both": lambda start, end, code: start == code == end,
}
MATCH_MODES = tuple(MATCHES)
BLOCK = 32 << 20  # longest block scanned at once (the decompressor's blocks are ~8 MB of 1 MB)

_FORMAT_HINT = "expected ConceptNet assertions: 5 tab-separated columns uri, rel, start, end, json"


def locate(request: FetchRequest, splits: tuple[str, ...] = ("all",)) -> dict[str, list[Path]]:
    """The dump: ``--input`` (a file, ``-`` for stdin, or a folder with one ``*assertions*.csv*``), else
    the cached download."""
    if request.input is None:
        path = hub.cached_url(DUMP_URL, f"conceptnet/{DUMP_NAME}", what="the ConceptNet 5.7 assertions dump")
        return {"all": [path]}
    path = request.input
    if str(path) == "-":  # e.g. `zcat dump.csv.gz | lrltool fetch conceptnet -i -`
        return {"all": [path]}
    if path.is_dir():
        found = [path / DUMP_NAME] if (path / DUMP_NAME).is_file() else sorted(path.glob("*assertions*.csv*"))
        if len(found) != 1:
            raise InputError(
                f"expected one ConceptNet assertions file in the folder, found {len(found)}"
                + (f" ({', '.join(p.name for p in found)})" if found else ""),
                hint=f"name the file itself, e.g. --input {path / DUMP_NAME}",
                path=str(path),
            )
        path = found[0]
    elif not path.exists():
        raise InputError("no such file", hint=f"download {DUMP_URL} or check the path", path=str(path))
    return {"all": [path]}


def parse_node(uri: str) -> tuple[str, str, str | None] | None:
    """``/c/ro/câine_de_pază/n/wikt/en_1`` -> ``("ro", "câine de pază", "n")``; None if not a concept."""
    if not uri.startswith("/c/"):
        return None
    parts = uri.split("/")
    if len(parts) < 4 or not parts[2] or not parts[3]:
        return None
    pos = parts[4] if len(parts) > 4 and parts[4] else None
    return parts[2], parts[3].replace("_", " "), pos


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    """Triple records of the rows whose start (``--match start``), either or both nodes are in the language.

    Counts every row read, and every row dropped by reason, in ``request.stats``.
    """
    for _, record in read_languages(paths, [request]):
        yield record


def read_languages(paths: list[Path], requests: list[FetchRequest]) -> Iterator[tuple[int, Record]]:
    """One pass over the dump for several languages: ``(index of the request, record)`` in file order.

    Each request (one language, its own ``stats``) gets exactly the records, counts and errors a
    single-language :func:`read` would give it. A row with nodes in two of the languages is a candidate
    for each. With several languages on Linux, a forked process inflates and scans the dump while this one
    parses and writes (:func:`_forked_scan`).
    """
    from lrltool import ui

    for request in requests:
        if request.match not in MATCH_MODES:
            raise InputError(
                f"unknown match mode {request.match!r}", hint=f"use one of {', '.join(MATCH_MODES)}"
            )
    path = paths[0]
    codes = [request.code for request in requests]
    lines = 0  # complete lines before the current block
    candidates, kept = [0] * len(requests), 0
    label = f"conceptnet {','.join(codes)}"
    scanner = _forked_scan if len(codes) > 1 and FORK else _scan
    with scanner(path, codes) as blocks, ui.progress(label, input_size(path), unit="bytes") as bar:
        for block in blocks:
            for index, raw, line in zip(block.indexes, block.rows, block.lines, strict=True):
                candidates[index] += 1
                record = _triple(raw, requests[index], path, lines + line + 1)
                if record is not None:
                    kept += 1
                    yield index, record
            lines += block.count
            bar.update(completed=block.position, kept=kept)
    for request, found in zip(requests, candidates, strict=True):
        request.stats.records_in += lines
        # Rows without the language's node prefix never reach the parser: they are other languages.
        if lines > found:
            request.stats.drop("other_language", lines - found)


#: Several languages on Linux: scan in a forked process (read_languages). Tests turn it off and on.
FORK = sys.platform == "linux"


class _Block(NamedTuple):
    """One block's candidate rows: the language index, the row (no newline) and its line in the block
    (from 0) of each, the block's complete lines, and the compressed bytes read so far (for progress)."""

    indexes: list[int]
    rows: list[bytes]
    lines: list[int]
    count: int
    position: int


@contextlib.contextmanager
def _scan(path: Path, codes: list[str]) -> Iterator[Iterator[_Block]]:
    """The candidate rows of each block of the dump, read in this process."""
    with InputStream(path) as source:
        yield _scanned(source, codes)


def _scanned(source: InputStream, codes: list[str]) -> Iterator[_Block]:
    import numpy as np

    hits = _hit_finder(codes)
    for block, first, cut, newlines in _blocks(source.blocks()):
        offsets, indexes = hits(block, first, cut)
        if not len(offsets):
            yield _Block([], [], [], len(newlines), source.position())
            continue
        at = np.searchsorted(newlines, offsets)  # the newline that ends each hit's line
        # One candidate per line and language (a row's start and end node): the first hit of each, in order.
        _, firsts = np.unique(at * len(codes) + indexes, return_index=True)
        firsts.sort()
        at, indexes = at[firsts], indexes[firsts]
        ends = newlines[at]
        begins = np.where(at > 0, newlines[at - 1] + 1, first)
        rows = [block[begin:end] for begin, end in zip(begins.tolist(), ends.tolist(), strict=True)]
        yield _Block(indexes.tolist(), rows, at.tolist(), len(newlines), source.position())


# A block's frame from the scanning process: kind, lines, position, candidates, bytes of rows.
_FRAME = struct.Struct("<BIQII")
_ROWS, _END, _ERROR = 0, 1, 2


@contextlib.contextmanager
def _forked_scan(path: Path, codes: list[str]) -> Iterator[Iterator[_Block]]:
    """:func:`_scan` in a forked process, its blocks sent back through a pipe: the inflating and scanning
    run beside this process's parsing and writing, without sharing its GIL (three languages: 1.72x the
    time of one in one process, benchmarks/README.md "fetch").

    The child ignores SIGINT and SIGTERM and dies with its parent (Linux's PR_SET_PDEATHSIG): the parent
    handles Ctrl-C and SIGTERM as always, and kills the child on its way out. The child's errors (a
    truncated or missing dump) reach the parent as the same error; the child never returns into the
    caller's code (``os._exit``), so the parent's open outputs are untouched by it.
    """
    parent = os.getpid()
    read_end, write_end = os.pipe()
    _widen(write_end)
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read_end)
            status = _scan_child(path, codes, write_end, parent)
        finally:
            os._exit(status)
    os.close(write_end)
    child = _Child(pid)
    try:
        with open(read_end, "rb", buffering=1 << 20) as stream:
            yield _frames(stream, child, path)
    finally:
        child.stop()


#: The pipe's capacity asked for (Linux's default is 64 KiB; an unprivileged process may ask up to
#: /proc/sys/fs/pipe-max-size, 1 MiB by default).
PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    """Ask Linux for a pipe of ``PIPE_BYTES``, so the scanning process runs some blocks ahead of this one
    instead of waiting for it at each (where the system refuses, the pipe keeps its size)."""
    with contextlib.suppress(AttributeError, OSError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class _Child:
    """The scanning process: killed if it has not finished, and reaped once."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.finished = False  # it sent its last frame
        self.status: int | None = None

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def stop(self) -> None:
        if not self.finished and self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def exit_reason(self) -> str:
        """Why it stopped without a last frame: its exit status or signal."""
        status = self.wait()
        if os.WIFSIGNALED(status):
            return f"its process was killed by signal {os.WTERMSIG(status)}"
        return f"its process exited with status {os.waitstatus_to_exitcode(status)}"


def _frames(stream: BinaryIO, child: _Child, path: Path) -> Iterator[_Block]:
    """The blocks the scanning process sends; its error raised here, as the same error."""
    while True:
        head = stream.read(_FRAME.size)
        if len(head) < _FRAME.size:
            raise InputError(f"the scan of the dump ended early ({child.exit_reason()})", path=str(path))
        kind, count, position, n, size = _FRAME.unpack(head)
        if kind != _ROWS:
            child.finished = True
            if kind == _ERROR:
                raise _child_error(pickle.loads(stream.read(size)))
            return
        indexes = array.array("H", stream.read(2 * n))
        lines = array.array("I", stream.read(4 * n))
        rows = stream.read(size).split(b"\n") if n else []
        yield _Block(indexes.tolist(), rows, lines.tolist(), count, position)


def _scan_child(path: Path, codes: list[str], fd: int, parent: int) -> int:
    """The forked process: scan, send each block's frame, then an end (or error) frame; its exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the parent (Linux)
    if os.getppid() != parent:  # the parent died before that
        return 1
    with open(fd, "wb", buffering=1 << 20) as out:
        try:
            with _scan(path, codes) as blocks:
                for block in blocks:
                    rows = b"\n".join(block.rows)
                    out.write(_FRAME.pack(_ROWS, block.count, block.position, len(block.rows), len(rows)))
                    out.write(array.array("H", block.indexes).tobytes())
                    out.write(array.array("I", block.lines).tobytes())
                    out.write(rows)
                    out.flush()
            out.write(_FRAME.pack(_END, 0, 0, 0, 0))
        except Exception as exc:
            error = pickle.dumps(_error_state(exc))
            out.write(_FRAME.pack(_ERROR, 0, 0, 0, len(error)) + error)
    return 0


def _error_state(exc: Exception) -> tuple[str, str, str | None, str | None, int | None] | str:
    """What the scanning process sends of its error: an :class:`LrlError`'s kind and fields, or a bug's
    traceback (read back by :func:`_child_error`)."""
    if isinstance(exc, LrlError):
        return type(exc).__name__, exc.message, exc.hint, exc.path, exc.line
    return traceback.format_exc()


def _child_error(state: tuple[str, str, str | None, str | None, int | None] | str) -> Exception:
    """The scanning process's error as this process raises it: the same :class:`LrlError`, or a bug's
    traceback."""
    if isinstance(state, str):
        return RuntimeError(f"the ConceptNet scan failed in its process:\n{state}")
    name, message, hint, path, line = state
    kind = getattr(errors, name, LrlError)
    return kind(message, hint=hint, path=path, line=line)


def _blocks(blocks: Iterator[bytes]) -> Iterator[tuple[bytes, int, int, Any]]:
    """``(block, start, cut, newlines)``: the complete lines of the decompressed data are
    ``block[start:cut]``, and ``newlines`` the offsets of their newlines in ``block`` (a numpy array).

    Blocks are the decompressor's own (no copy); a line cut by a block boundary comes whole as a small
    block of its own, and a last line without a newline with one added (a blank one is dropped).
    """
    import numpy as np

    carry = b""
    for chunk, newlines in _counted(_at_most(blocks, BLOCK)):
        if not len(newlines):  # no line ends in this block
            carry += chunk
            continue
        first, cut = int(newlines[0]) + 1, int(newlines[-1]) + 1
        if carry:
            yield carry + chunk[:first], 0, len(carry) + first, np.array([len(carry) + first - 1])
            carry = b""
            newlines = newlines[1:]
        else:
            first = 0
        if cut > first:
            yield chunk, first, cut, newlines
        carry = chunk[cut:]
    if carry.strip():
        yield carry + b"\n", 0, len(carry) + 1, np.array([len(carry)])


def _counted(blocks: Iterator[bytes]) -> Iterator[tuple[bytes, Any]]:
    """``(block, newlines)``: each block's newline offsets are found by a worker thread (numpy releases the
    GIL) while the caller scans the block before. The blocks themselves are read here, in the caller's
    thread: a thread blocked reading a stalled pipe would hold the file's lock and keep SIGTERM's cleanup
    from closing it."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="lrltool-count")
    try:
        pending = None
        for block in blocks:
            counting = pool.submit(_newlines, block)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (block, counting)
        if pending is not None:
            yield pending[0], pending[1].result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _at_most(blocks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The blocks, those longer than ``size`` cut into pieces (rare at the default size: a copy each)."""
    for block in blocks:
        if len(block) <= size:
            yield block
        else:
            yield from (block[i : i + size] for i in range(0, len(block), size))


Hits = tuple[Any, Any]  # numpy int64 arrays: offsets, and the index of the code found at each


def _hit_finder(codes: list[str]) -> Callable[[bytes, int, int], Hits]:
    """``hits(block, first, cut)``: the offsets of ``<TAB>/c/<code>/`` wholly in ``block[first:cut]`` and
    the code's index at each (two numpy arrays), in order of offset.

    Hyperscan (:func:`_hyperscan`) where it is installed, for one code or many. Without it, for one code
    the C library's ``memmem`` through ctypes (1.4x faster than ``bytes.find``, 0.36 against 0.52 s for
    the benchmark's 2M lines; ctypes releases the GIL during the call, so decompression and newline
    counting run beside it), ``bytes.find`` where there is no memmem (Windows); for several codes one
    regular expression, so N languages still take one pass (benchmarks/README.md "fetch").
    """
    needles = [f"\t/c/{code}/".encode() for code in codes]
    scan = _hyperscan(needles)
    if scan is not None:
        return scan
    if len(codes) == 1:
        needle, size, memmem = needles[0], len(needles[0]), _memmem()
        if memmem is not None:

            def search_c(block: bytes, first: int, cut: int) -> Iterator[int]:
                base = ctypes.cast(ctypes.c_char_p(block), ctypes.c_void_p).value or 0
                end = base + cut
                at = memmem(base + first, cut - first, needle, size)
                while at:
                    yield at - base
                    at = memmem(at + size, end - at - size, needle, size)

            return _one_code(search_c)

        def find(block: bytes, first: int, cut: int) -> Iterator[int]:
            hit = block.find(needle, first, cut)
            while hit != -1:
                yield hit
                hit = block.find(needle, hit + size, cut)

        return _one_code(find)
    # A code may come twice (zho_Hans and zho_Hant are both zh): each of its languages gets its rows.
    index: dict[bytes, list[int]] = {}
    for i, code in enumerate(codes):
        index.setdefault(code.encode(), []).append(i)
    pattern = re.compile(b"\t/c/(" + b"|".join(re.escape(code) for code in index) + b")/")

    def search(block: bytes, first: int, cut: int) -> Hits:
        import numpy as np

        found = [
            (match.start(), i) for match in pattern.finditer(block, first, cut) for i in index[match.group(1)]
        ]
        return np.array([at for at, _ in found], np.int64), np.array([i for _, i in found], np.int64)

    return search


def _one_code(offsets: Callable[[bytes, int, int], Iterator[int]]) -> Callable[[bytes, int, int], Hits]:
    """A finder of one code's offsets as :func:`_hit_finder`'s ``hits`` (every index 0)."""

    def hits(block: bytes, first: int, cut: int) -> Hits:
        import numpy as np

        found = np.fromiter(offsets(block, first, cut), np.int64)
        return found, np.zeros(len(found), np.int64)

    return hits


#: Tests turn Hyperscan off to run the other finders.
HYPERSCAN = True


def _hyperscan(needles: list[bytes]) -> Callable[[bytes, int, int], Hits] | None:
    """The hit finder of Intel's Hyperscan (SIMD multi-literal matching; the ``hyperscan`` package), or
    None where it is not installed (it has no wheel for Linux on ARM) or cannot run (a CPU without SSSE3).

    One pass over each block for any number of needles; the scan releases the GIL, and Python is called
    only at a hit, to note its end and needle. On the benchmark's 2M-line dump it added 0.2-0.3 s to
    inflating for three codes where the regular expression added 0.7-0.9 s, and for one code it beat memmem
    (benchmarks/README.md "Issue 14, seventh stop"). A block is scanned whole (no copy); numpy then drops
    the hits not wholly in ``block[first:cut]``. Hyperscan reports hits by their end; these needles hold
    one tab, at their start, so two hits never overlap and that is also the order of their offsets, but for
    a code given twice (zho_Hans and zho_Hant are both zh), whose hits numpy puts in needle order.
    """
    if not HYPERSCAN:
        return None
    try:
        import hyperscan
    except ImportError:
        return None
    try:
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=needles, ids=list(range(len(needles))), elements=len(needles), literal=True
        )
        scratch = hyperscan.Scratch(database)
    except hyperscan.error:
        return None
    import numpy as np

    sizes = np.array([len(needle) for needle in needles], np.int64)

    def scan(block: bytes, first: int, cut: int) -> Hits:
        ends: list[int] = []
        found: list[int] = []
        end_at, needle_at = ends.append, found.append

        def hit(index: int, _start: int, end: int, _flags: int, _context: Any) -> None:
            end_at(end)
            needle_at(index)

        database.scan(block, match_event_handler=hit, scratch=scratch)
        indexes = np.array(found, np.int64)
        offsets = np.array(ends, np.int64) - sizes[indexes]
        if len(sizes) > 1:
            order = np.lexsort((indexes, offsets))
            offsets, indexes = offsets[order], indexes[order]
        inside = (offsets >= first) & (offsets + sizes[indexes] <= cut)
        return offsets[inside], indexes[inside]

    return scan


def _memmem() -> Any:
    """The C library's ``memmem`` through ctypes (it releases the GIL while it runs), or None where the
    process has none."""
    try:
        memmem = ctypes.CDLL(None).memmem
    except (AttributeError, OSError):
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return memmem


def _newlines(block: bytes) -> Any:
    """The offsets of the newlines in ``block``: numpy finds them without the GIL, in about the time
    ``bytes.count`` takes to count them (0.45 s for the 617 MB of the benchmark's 2M-line dump)."""
    import numpy as np

    return np.flatnonzero(np.frombuffer(block, np.uint8) == 10)


def _triple(raw: bytes, request: FetchRequest, path: Path, line: int) -> Record | None:
    """One candidate row, line ``line`` of the dump -> a triple record, or None (dropped and counted, or
    rejected as malformed)."""
    stats = request.stats
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        request.reject(InputError("row is not valid UTF-8", hint=_FORMAT_HINT), path, line)
        return None
    fields = text.rstrip("\r").split("\t")
    if len(fields) != 5:
        request.reject(
            InputError(f"expected 5 tab-separated columns, found {len(fields)}", hint=_FORMAT_HINT),
            path,
            line,
        )
        return None
    uri, rel, start_uri, end_uri, meta_text = fields
    if not rel.startswith("/r/"):
        request.reject(InputError(f"relation {rel!r} is not /r/<Name>", hint=_FORMAT_HINT), path, line)
        return None
    if rel == "/r/ExternalURL":
        stats.drop("external_url")
        return None
    start, end = parse_node(start_uri), parse_node(end_uri)
    if start is None or end is None:
        stats.drop("not_a_concept")
        return None
    if not MATCHES[request.match](start[0], end[0], request.code):
        stats.drop("other_language")
        return None
    try:
        meta = orjson.loads(meta_text)
    except orjson.JSONDecodeError:
        request.reject(InputError("the 5th column is not valid JSON", hint=_FORMAT_HINT), path, line)
        return None
    weight = meta.get("weight") if isinstance(meta, dict) else None
    if not isinstance(weight, (int, float)) or isinstance(weight, bool):
        request.reject(InputError("the JSON column has no numeric 'weight'", hint=_FORMAT_HINT), path, line)
        return None
    return {
        "id": uri,
        "rel": rel[3:],
        "start": start[1],
        "end": end[1],
        "start_lang": start[0],
        "end_lang": end[0],
        "start_pos": start[2],
        "end_pos": end[2],
        "weight": float(weight),
        "dataset": meta.get("dataset"),
        "surface": meta.get("surfaceText"),
    }
