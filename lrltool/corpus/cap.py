"""``lrltool cap``: clean text records, drop exact duplicates, keep them in order up to a byte budget.

Per record, in this order:

1. clean the text: control characters (Unicode category Cc other than whitespace) removed, every run of
   whitespace (``str.isspace``: space, tab, newline, no-break space, ...) made one space and the ends
   stripped, then Unicode NFC (checked with ``unicodedata.is_normalized`` first; most text already is);
2. drop it if the cleaned text is empty (``empty``) or shorter than ``min_chars`` characters (``too_short``);
3. drop it if the same cleaned text was kept before (``duplicate``): a set of 64-bit digests
   (:class:`DigestSet`), never the texts themselves;
4. keep it unless its UTF-8 bytes would push the kept texts' bytes over ``max_bytes``; the first record
   that would is counted as ``over_cap`` and ends the run (the rest of a file is not read; stdin is
   drained so that the command writing into the pipe does not fail).

The work is done on batches of whole lines (``streams.LineBatchReader``); with more than one worker the
batches are cleaned in a pool of processes and merged in input order, so the output is the same as with
one process (duplicates and the cap are decided in the main process, in order).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import re
import unicodedata
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import orjson

from lrltool.errors import InputError, UsageError
from lrltool.streams import (
    LineBatchReader,
    Stats,
    atomic_files,
    atomic_output,
    display_name,
    input_size,
    is_text_input,
    not_an_object_error,
    nothing_written,
    parse_jsonl_lines,
    parse_text_lines,
    read_records,
    require,
)

if TYPE_CHECKING:
    import numpy as np

# ---------------------------------------------------------------------------------------------------
# Sizes and split specifications

_DECIMAL = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
            "t": 10**12, "tb": 10**12}  # fmt: skip
_BINARY = {"ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
           "ti": 2**40, "tib": 2**40}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
SIZE_FORMS = (
    "a number of bytes, optionally with a unit: 100k, 500M, 1G, 2T (powers of 1000; kB, MB, GB too) "
    "or 512KiB, 500MiB, 1GiB (powers of 1024)"
)


def parse_size(text: str) -> int:
    """Bytes from ``1G``, ``500M``, ``1GiB``, ``100k``, ``1.5G`` or a plain integer (case-insensitive).

    ``k``/``M``/``G``/``T`` (and ``kB``, ``MB``, ...) are powers of 1000, ``KiB``/``MiB``/``GiB``/``TiB``
    powers of 1024. Refuses anything else and sizes below one byte (:class:`UsageError`).
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    factor = _DECIMAL.get(unit) or _BINARY.get(unit)
    if match is None or factor is None:
        raise UsageError(f"cannot read '{text}' as a size", hint=f"give {SIZE_FORMS}")
    size = int(float(match.group(1)) * factor) if "." in match.group(1) else int(match.group(1)) * factor
    if size < 1:
        raise UsageError(f"size '{text}' is less than one byte", hint=f"give {SIZE_FORMS}")
    return size


_SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SPLIT_FORM = "write NAME=FRACTION pairs that sum to 1, e.g. train=0.8,validation=0.1,test=0.1"


def parse_split(text: str) -> dict[str, float]:
    """``{"train": 0.8, "validation": 0.1, "test": 0.1}`` from ``train=0.8,validation=0.1,test=0.1``.

    Names are file-name safe and unique, fractions in (0, 1] and summing to 1; refuses anything else.
    """
    split: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not _SPLIT_NAME.fullmatch(name):
            raise UsageError(f"cannot read '{part.strip()}' in the split '{text}'", hint=SPLIT_FORM)
        if name in split:
            raise UsageError(f"split '{name}' is given twice in '{text}'", hint=SPLIT_FORM)
        try:
            fraction = float(value)
        except ValueError:
            raise UsageError(f"'{value}' is not a fraction in the split '{text}'", hint=SPLIT_FORM) from None
        if not 0 < fraction <= 1:
            raise UsageError(f"fraction {value} of '{name}' is not in (0, 1]", hint=SPLIT_FORM)
        split[name] = fraction
    if abs(sum(split.values()) - 1) > 1e-6:
        raise UsageError(f"the fractions of '{text}' sum to {sum(split.values()):g}, not 1", hint=SPLIT_FORM)
    return split


def split_thresholds(split: dict[str, float]) -> tuple[int, ...]:
    """Upper bounds of each split in the 64-bit hash space (the last is 2**64)."""
    bounds, total = [], 0.0
    for fraction in split.values():
        total += fraction
        bounds.append(min(2**64, round(total * 2**64)))
    bounds[-1] = 2**64
    return tuple(bounds)


def split_index(record_id: str, seed: int, thresholds: tuple[int, ...]) -> int:
    """Which split a record goes to: a hash of its id and the seed, so it never depends on other records."""
    digest = hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()
    return bisect.bisect_right(thresholds, int.from_bytes(digest, "little"))


# ---------------------------------------------------------------------------------------------------
# Cleaning

# Category Cc without the characters str.isspace() counts as whitespace (those become spaces).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def clean_text(text: str) -> str:
    """Control characters removed, whitespace runs made one space, ends stripped, then NFC.

    NFC comes last, so that removing a character cannot leave a composable pair behind.
    """
    # Fast path for the common case: paragraphs separated by newlines, ASCII spaces, nothing else.
    # isprintable() is False for every control character and every whitespace but the ASCII space.
    flat = text.replace("\n", " ") if "\n" in text else text
    if flat.isprintable():
        while "  " in flat:
            flat = flat.replace("  ", " ")
        text = flat.strip(" ")
    else:
        text = " ".join(text.split())
        # Removing a control character can bring two spaces together: collapse again.
        if not text.isprintable() and _CONTROL.search(text):
            text = " ".join(_CONTROL.sub("", text).split())
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def text_digest(data: bytes) -> bytes:
    """The 8-byte digest that stands for a text in the duplicate filter (little-endian uint64)."""
    return hashlib.blake2b(data, digest_size=8).digest()


# ---------------------------------------------------------------------------------------------------
# The duplicate filter


class DigestSet:
    """A set of 64-bit digests in one open-addressing table (numpy ``uint64``, linear probing).

    8 bytes a slot at a load of at most 1/2, so 16 to 32 bytes per distinct text, where a Python set
    of ints costs about 90. Zero marks an empty slot (a digest of 0 is stored as 1). Two different
    texts share a digest with probability about n**2 / 2**65 over n texts (3e-6 for 10 million).
    """

    def __init__(self, capacity: int = 1 << 10) -> None:
        import numpy as np

        self._np = np
        self._table = np.zeros(1 << max(4, (capacity - 1).bit_length()), dtype=np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return int(self._table.nbytes)

    def add(self, digest: bytes) -> bool:
        """Add one digest; True if it was not there before."""
        key = int.from_bytes(digest, "little") or 1
        if (self._count + 1) * 2 > len(self._table):
            self._grow(self._count + 1)
        table, mask = self._table, len(self._table) - 1
        slot = key & mask
        while True:
            value = int(table[slot])
            if value == 0:
                table[slot] = key
                self._count += 1
                return True
            if value == key:
                return False
            slot = (slot + 1) & mask

    def add_batch(self, digests: bytes) -> np.ndarray:
        """Add concatenated 8-byte digests in order; a bool array, True where a digest is new.

        Of equal digests within the batch only the first counts as new.
        """
        np = self._np
        keys = np.frombuffer(digests, dtype="<u8").astype(np.uint64)
        keys[keys == 0] = 1
        unique, first = np.unique(keys, return_index=True)
        is_new = self._insert(unique)
        new = np.zeros(len(keys), dtype=bool)
        new[first[is_new]] = True
        return new

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys; True for those not in the table before."""
        np = self._np
        if (self._count + len(keys)) * 2 > len(self._table):
            self._grow(self._count + len(keys))
        table = self._table
        mask = np.uint64(len(table) - 1)
        slots = (keys & mask).astype(np.intp)
        is_new = np.zeros(len(keys), dtype=bool)
        todo = np.arange(len(keys))
        while todo.size:
            values = table[slots[todo]]
            empty = values == 0
            # Claim the empty slots; where two keys want one slot, one write wins and the other probes on.
            claim = todo[empty]
            table[slots[claim]] = keys[claim]
            won = table[slots[claim]] == keys[claim]
            is_new[claim[won]] = True
            todo = np.concatenate([claim[~won], todo[~empty & (values != keys[todo])]])
            slots[todo] = (slots[todo] + 1) & (len(table) - 1)
        self._count += int(is_new.sum())
        return is_new

    def _grow(self, needed: int) -> None:
        np = self._np
        size = len(self._table)
        while needed * 2 > size:
            size *= 2
        old = self._table[self._table != 0]
        self._table = np.zeros(size, dtype=np.uint64)
        self._count = 0
        self._insert(old)


# ---------------------------------------------------------------------------------------------------
# Cleaning a batch (in a worker process, or inline)

# Status of each non-blank line of a batch.
CANDIDATE, EMPTY, TOO_SHORT, BAD_RECORD, BAD_LINE = range(5)  # BAD_LINE: not JSON, not a record in


@dataclass(frozen=True)
class CleanOptions:
    min_chars: int = 1
    thresholds: tuple[int, ...] | None = None  # split bounds; None: no split
    seed: int = 42
    text: bool = False  # plain text, one record per line (streams.parse_text_lines), not JSONL
    lang: str | None = None  # the ``lang`` of records that have none (--lang, for plain text)


class CleanedBatch(NamedTuple):
    """What cleaning one batch gives the merging process: bytes only, cheap to send between processes."""

    statuses: bytes  # one status per non-blank line
    errors: list[tuple[int, int, str, str | None]]  # (index in statuses, line number, message, hint)
    lines: bytes | memoryview  # the candidates' output lines, concatenated
    line_ends: bytes  # int64 end offset of each candidate's line in ``lines``
    sizes: bytes  # int64 UTF-8 bytes of each candidate's text
    digests: bytes  # 8-byte digest of each candidate's text
    splits: bytes  # split index of each candidate (empty without a split)


def clean_batch(data: bytes, first_line: int, options: CleanOptions) -> CleanedBatch:
    """Parse and clean one batch of whole JSONL lines: a status per record, the survivors serialized."""
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    statuses = bytearray()
    errors: list[tuple[int, int, str, str | None]] = []
    out: list[bytes] = []
    ends: list[int] = []
    sizes: list[int] = []
    digests: list[bytes] = []
    splits = bytearray()
    end = 0
    min_chars, thresholds, seed = options.min_chars, options.thresholds, options.seed
    lang = options.lang
    for number, value in (parse_text_lines if options.text else parse_jsonl_lines)(data, first_line):
        if lang is not None and type(value) is dict and "lang" not in value:
            value["lang"] = lang
        try:
            if type(value) is not dict:
                if isinstance(value, InputError):
                    statuses.append(BAD_LINE)
                    errors.append((len(statuses) - 1, number, value.message, value.hint))
                    continue
                raise not_an_object_error(value)
            text = value.get("text")
            if type(text) is not str:
                text = require(value, "text")
            if thresholds is not None:
                record_id = value.get("id")
                if type(record_id) is not str:
                    record_id = str(require(value, "id", (str, int)))
                split = split_index(record_id, seed, thresholds)
        except InputError as exc:
            statuses.append(BAD_RECORD)
            errors.append((len(statuses) - 1, number, exc.message, exc.hint))
            continue
        cleaned = clean_text(text)
        if len(cleaned) < min_chars or not cleaned:
            statuses.append(TOO_SHORT if cleaned else EMPTY)
            continue
        if cleaned is not text:
            value["text"] = cleaned
        line = dumps(value, option=option)
        encoded = cleaned.encode()  # after dumps, which leaves the str's UTF-8 form cached: a copy
        out.append(line)
        end += len(line)
        ends.append(end)
        sizes.append(len(encoded))
        digests.append(text_digest(encoded))
        if thresholds is not None:
            splits.append(split)
        statuses.append(CANDIDATE)
    return CleanedBatch(
        bytes(statuses),
        errors,
        b"".join(out),
        array("q", ends).tobytes(),
        array("q", sizes).tobytes(),
        b"".join(digests),
        bytes(splits),
    )


_worker_options: CleanOptions | None = None
_slots: list[Any] | None = None  # shared memory for results, set before the workers fork (_CleaningPool)


def _start_worker(options: CleanOptions) -> None:
    import signal

    global _worker_options
    _worker_options = options
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: terminate() ends a worker


def _clean_batch_in_worker(data: bytes, first_line: int, slot: int | None) -> tuple[CleanedBatch, int | None]:
    assert _worker_options is not None
    batch = clean_batch(data, first_line, _worker_options)
    if slot is not None and _slots is not None and len(batch.lines) <= len(_slots[slot]):
        _slots[slot][: len(batch.lines)] = batch.lines
        return batch._replace(lines=b""), len(batch.lines)
    return batch, None


# ---------------------------------------------------------------------------------------------------
# Merging in input order: duplicates, the cap, the outputs


class _Merger:
    """Takes cleaned batches in input order and decides what is kept, counts, and writes."""

    def __init__(
        self,
        outputs: list[IO[bytes]],
        *,
        max_bytes: int | None,
        dedup: bool,
        reject: Any,
        stats: Stats,
    ) -> None:
        import numpy as np

        self.np = np
        self.outputs = outputs
        self.max_bytes = max_bytes
        self.seen = DigestSet() if dedup else None
        self.reject = reject
        self.stats = stats
        self.kept_bytes = 0
        self.split_counts = [0] * len(outputs)
        self.reached = False

    def add(self, batch: CleanedBatch) -> bool:
        """Merge one batch; True when the cap is reached (nothing after it counts)."""
        np = self.np
        statuses = np.frombuffer(batch.statuses, dtype=np.uint8)
        candidates = np.flatnonzero(statuses == CANDIDATE)
        sizes = np.frombuffer(batch.sizes, dtype=np.int64)
        keep = self.seen.add_batch(batch.digests) if self.seen is not None else np.ones(len(sizes), bool)
        end = len(statuses)  # statuses before this index count
        stop: int | None = None  # the candidate that would have crossed the cap
        if self.max_bytes is not None:
            new = np.flatnonzero(keep)
            total = self.kept_bytes + np.cumsum(sizes[new])
            fit = int(np.searchsorted(total, self.max_bytes, side="right"))
            if fit < len(new):
                stop = int(new[fit])
                end = int(candidates[stop]) + 1
                keep[stop:] = False
        for index, number, message, hint in batch.errors:
            if index >= end:
                break
            self.reject(InputError(message, hint=hint, line=number))
        counts = np.bincount(statuses[:end], minlength=5)
        n_candidates = int(counts[CANDIDATE]) - (stop is not None)
        n_kept = int(keep.sum())
        stats = self.stats
        stats.records_in += end - int(counts[BAD_LINE])
        stats.records_out += n_kept
        for reason, status in (("empty", EMPTY), ("too_short", TOO_SHORT)):
            if counts[status]:
                stats.drop(reason, int(counts[status]))
        if n_candidates - n_kept:
            stats.drop("duplicate", n_candidates - n_kept)
        if stop is not None:
            stats.drop("over_cap")
            self.reached = True
        self.kept_bytes += int(sizes[keep].sum())
        self._write(batch, keep)
        return stop is not None

    def _write(self, batch: CleanedBatch, keep: np.ndarray) -> None:
        np = self.np
        ends = np.frombuffer(batch.line_ends, dtype=np.int64)
        if len(self.outputs) == 1:
            self.split_counts[0] += int(keep.sum())
            _write_kept(np, self.outputs[0], batch.lines, ends, keep)
            return
        splits = np.frombuffer(batch.splits, dtype=np.uint8)
        for index, stream in enumerate(self.outputs):
            mine = keep & (splits == index)
            self.split_counts[index] += int(mine.sum())
            _write_kept(np, stream, batch.lines, ends, mine)


def _write_kept(
    np: Any, stream: IO[bytes], lines: bytes | memoryview, ends: np.ndarray, keep: np.ndarray
) -> None:
    """Write the kept lines of a batch: one write per run of consecutive kept lines."""
    if keep.all():
        stream.write(lines)
        return
    edges = np.flatnonzero(np.diff(np.concatenate(([0], keep.view(np.int8), [0]))))  # run starts, ends
    starts = np.concatenate(([0], ends))  # byte offset where each line starts; the last: the end
    view = memoryview(lines)
    for first, last in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        stream.write(view[starts[first] : starts[last]])


#: Seconds a closing pool of workers waits for the batches still in flight (_CleaningPool.close).
CLOSE_WAIT = 10.0


class _CleaningPool:
    """Worker processes that clean batches, at most two batches a worker in flight, results in order.

    Started before this process opens its outputs or shows progress: then it has no threads of its own
    and fork is safe (spawn, where fork is missing, re-imports the caller's main module). With fork,
    each batch in flight has a slot of shared memory that its worker writes the output lines into, so
    they do not come back through the result pipe (which took a third of the merging process's time);
    a result too big for its slot comes through the pipe.
    """

    def __init__(self, workers: int, options: CleanOptions, batch_bytes: int) -> None:
        import mmap
        import multiprocessing

        global _slots
        fork = "fork" in multiprocessing.get_all_start_methods()
        self.depth = 2 * workers
        self.slots = [mmap.mmap(-1, 2 * batch_bytes + (1 << 20)) for _ in range(self.depth)] if fork else None
        _slots = self.slots  # the forked workers inherit them
        context = multiprocessing.get_context("fork" if fork else "spawn")
        self.pool = context.Pool(workers, initializer=_start_worker, initargs=(options,))
        self.pending: deque[tuple[int | None, Any]] = deque()  # (slot, AsyncResult) of the batches in flight

    def clean(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[CleanedBatch]:
        pending = self.pending
        for index, (line, data) in enumerate(batches):
            while len(pending) >= self.depth:
                yield self._result(*pending.popleft())
            # A slot is free again: the batch that used it was merged before this one is sent.
            slot = index % self.depth if self.slots is not None else None
            pending.append((slot, self.pool.apply_async(_clean_batch_in_worker, (data, line, slot))))
        while pending:
            yield self._result(*pending.popleft())

    def _result(self, slot: int | None, result: Any) -> CleanedBatch:
        batch, size = result.get()
        if size is not None and self.slots is not None and slot is not None:
            batch = batch._replace(lines=memoryview(self.slots[slot])[:size])
        return batch

    def close(self) -> None:
        """End the workers, letting those still cleaning a batch finish it first (at most two batches
        each, :data:`CLOSE_WAIT` seconds in all); then they end on their own (``Pool.close``, ``join``).

        ``Pool.terminate`` kills a worker in whatever it is doing. One killed while it sends a result
        keeps the result queue's lock for ever; the pool's task thread then waits for that lock, and
        ``terminate`` for that thread, without end (CPython's multiprocessing). A capped run ends with
        batches in flight, so that hung a `make test` run once, and one of two loops of 300 capped runs here.
        Workers that do not finish in time (one was killed) are terminated as before.
        """
        import time

        global _slots
        deadline = time.monotonic() + CLOSE_WAIT
        for _, result in self.pending:
            result.wait(max(0.0, deadline - time.monotonic()))
        if all(result.ready() for _, result in self.pending):
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()
        self.pending.clear()
        _slots = self.slots = None  # unmapped once the last view of them is gone


def default_workers() -> int:
    """CPUs this process may use (at most 8: more than that waits on reading and writing anyway)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _cleaned_batches(
    batches: Iterable[tuple[int, bytes]], options: CleanOptions, pool: _CleaningPool | None
) -> Iterator[CleanedBatch]:
    """Cleaned batches in input order: inline, or by the pool of workers."""
    if pool is not None:
        yield from pool.clean(batches)
        return
    for line, data in batches:
        yield clean_batch(data, line, options)


def _split_outputs(folder: Path, names: list[str], **zstd: int) -> AbstractContextManager[list[IO[bytes]]]:
    """One output a split, in ``folder``; they appear together on success and not at all on failure (a
    ``folder`` made for them goes too: :func:`~lrltool.streams.atomic_files`)."""
    return atomic_files([folder / f"{name}.jsonl.zst" for name in names], **zstd)


def cap_records(
    *,
    input_path: str | os.PathLike[str] = "-",
    output: str | os.PathLike[str] = "-",
    max_bytes: int | None = None,
    min_chars: int = 1,
    split: dict[str, float] | None = None,
    seed: int = 42,
    keep_duplicates: bool = False,
    skip_bad_lines: bool = False,
    workers: int | None = None,
    batch_bytes: int = 4 << 20,
    lang: str | None = None,
) -> Stats:
    """Clean, deduplicate and cap the text records of ``input_path``; write them to ``output``.

    Reads JSONL text records (plain/.gz/.zst, ``-`` = stdin) with a string ``text`` (and an ``id``, a
    string or integer, when splitting), or plain text (``.txt``, or stdin with ``--input-format text``):
    one record a line, ``{"id": "<line number>", "text": line}``, blank lines skipped, as train-adapter
    reads it (:func:`lrltool.streams.text_line_record`); ``lang`` is set on records that carry none.
    Writes the kept records in input order, every other key
    unchanged, to ``output`` (``-`` = stdout, compressed by suffix); with ``split`` (names to fractions
    summing to 1), ``output`` is a folder and each record goes to ``<output>/<name>.jsonl.zst`` by a hash
    of its id and ``seed``, the files appearing together at the end. See the module docstring for the
    cleaning steps and the cap. Refuses a line that is not a JSON object, a record without a string
    ``text`` (or id when splitting) unless ``skip_bad_lines``, a split without an output folder, and input
    of which no record is kept (writing nothing, as every command does; :func:`nothing_written`).
    Returns the run's :class:`Stats` (dropped by reason; ``bytes``: UTF-8 bytes of the kept texts).
    """
    from lrltool import ui

    stats = Stats("cap")
    if split is not None and (str(output) == "-" or Path(output).is_file()):
        raise UsageError(
            "--split writes one file per split into a folder",
            hint="give the folder with -o DIR (it is created if missing)",
        )
    if split is None and str(output) != "-" and Path(output).is_dir():
        raise UsageError(
            f"-o {output} is a folder", hint="name an output file, or give --split to fill a folder"
        )
    if min_chars < 0:
        raise UsageError(f"--min-chars must be 0 or more, not {min_chars}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {workers}")
    options = CleanOptions(
        min_chars=min_chars,
        thresholds=split_thresholds(split) if split else None,
        seed=seed,
        text=is_text_input(input_path),
        lang=lang,
    )
    warned = [0]

    def reject(error: InputError) -> None:
        error.located(display_name(input_path))
        if not skip_bad_lines:
            raise error
        stats.drop("bad_line")
        if warned[0] < 5:
            ui.warn(f"skipped: {error}")
        warned[0] += 1

    reader = LineBatchReader(input_path, batch_bytes=batch_bytes)
    batches = iter(reader)
    head = list(itertools.islice(batches, 2))  # a missing or unreadable input fails here, before any output
    # One batch is cleaned inline: starting processes would cost more than it saves.
    pool = _CleaningPool(workers, options, batch_bytes) if workers > 1 and len(head) == 2 else None
    # zstd's own threads compress the output while this process merges (when workers clean apart).
    zstd = {"zstd_threads": workers if pool is not None else 0}
    if split is not None:
        opened = _split_outputs(Path(output), list(split), **zstd)
    else:
        opened = _single_output(output, **zstd)
    try:
        with opened as streams, ui.progress("cap", total=input_size(input_path), unit="bytes") as bar:
            merger = _Merger(
                streams, max_bytes=max_bytes, dedup=not keep_duplicates, reject=reject, stats=stats
            )
            for batch in _cleaned_batches(itertools.chain(head, batches), options, pool):
                if merger.add(batch):
                    break
                bar.update(completed=reader.position(), kept=stats.records_out)
            if stats.records_out == 0:  # inside the with: nothing is written
                raise nothing_written(stats, display_name(input_path), "records")
        if merger.reached and str(input_path) == "-":
            # Read stdin to its end, so that the command writing into the pipe does not die of SIGPIPE.
            for _ in batches:
                pass
    finally:
        if pool is not None:
            pool.close()
        batches.close()  # type: ignore[attr-defined]  # a generator: closes the input now
    stats.extra["bytes"] = merger.kept_bytes
    if max_bytes is not None:
        stats.extra["max_bytes"] = max_bytes
        stats.extra["cap_reached"] = "yes" if merger.reached else "no"
    if split is not None:
        stats.extra["splits"] = dict(zip(split, merger.split_counts, strict=True))
    if merger.seen is not None:
        seen = merger.seen
        stats.extra["dedup_set"] = {
            "digests": len(seen),
            "bytes": seen.nbytes,
            "bytes_per_digest": round(seen.nbytes / max(1, len(seen)), 1),
        }
    return stats


@contextmanager
def _single_output(path: str | os.PathLike[str], **zstd: int) -> Iterator[list[IO[bytes]]]:
    with atomic_output(path, **zstd) as stream:
        yield [stream]


# ---------------------------------------------------------------------------------------------------
# The paper's split and truncation (cap --paper-compat; docs/paper-protocol.md)

PAPER_SPLITS = ("train", "validation", "test")


def parse_split_sizes(text: str) -> dict[str, int]:
    """``train=1GiB,validation=200MiB`` -> bytes per split (names of :data:`PAPER_SPLITS`)."""
    sizes: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in PAPER_SPLITS:
            raise UsageError(
                f"cannot read '{part.strip()}' in '{text}'",
                hint="give split=size pairs of train, validation, test, e.g. train=1GiB,validation=200MiB",
            )
        sizes[name] = parse_size(value)
    return sizes


def paper_cap_records(
    *,
    input_path: str | os.PathLike[str] = "-",
    output: str | os.PathLike[str],
    max_bytes: dict[str, int] | None = None,
    skip_bad_lines: bool = False,
    lang: str | None = None,
) -> Stats:
    """What src/glot/glot_get.py:33-34 (cn_to_nl.py:81-82) and glot_truncate.py:26-47 did, on text records.

    All records in file order, no cleaning and no deduplication; scikit-learn's
    ``train_test_split(records, test_size=0.2, random_state=42)``, the 20% split again with
    ``test_size=0.5`` into validation and test; then each split's file cut to its ``max_bytes`` share by
    line count: ``int(lines x max / size)`` first lines, where size is the split's UTF-8 bytes of text
    plus one newline a record (the seed measured its CSV files), only when size > max. Writes
    ``output``/{train,validation,test}.jsonl.zst (together, or none). Holds the records in memory, as the
    seed did. Refuses a record without a string ``text`` (unless ``skip_bad_lines``) and fewer than 10
    records (the 10% splits would be empty).
    """
    from sklearn.model_selection import train_test_split

    if str(output) == "-" or Path(output).is_file():
        raise UsageError("--paper-compat writes one file per split into a folder", hint="give -o DIR")
    stats = Stats("cap")
    reader = read_records(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    records = []
    for record in reader:
        try:
            require(record, "text")
        except InputError as exc:
            reader.reject(exc)
            continue
        if lang is not None and "lang" not in record:
            record["lang"] = lang
        records.append(record)
    if len(records) < 10:
        raise InputError(
            f"{len(records)} records: too few to split 80/10/10",
            hint="give at least 10 text records",
            path=display_name(input_path),
        )
    train, rest = train_test_split(records, test_size=0.2, random_state=42)
    validation, test = train_test_split(rest, test_size=0.5, random_state=42)
    parts = {"train": train, "validation": validation, "test": test}
    for name, limit in (max_bytes or {}).items():
        size = sum(len(r["text"].encode()) + 1 for r in parts[name])
        if size > limit:
            keep = int(len(parts[name]) * (limit / size))
            stats.drop(f"cap_{name}", len(parts[name]) - keep)
            parts[name] = parts[name][:keep]
    with _split_outputs(Path(output), list(PAPER_SPLITS)) as streams:
        for stream, name in zip(streams, PAPER_SPLITS, strict=True):
            for record in parts[name]:
                stream.write(orjson.dumps(record) + b"\n")
    stats.records_out = sum(len(p) for p in parts.values())
    stats.extra.update({f"{name}_records": len(parts[name]) for name in PAPER_SPLITS})
    return stats
