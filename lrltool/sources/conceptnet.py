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
(a start or end node in the language) are located and parsed, everything else is counted by
``bytes.count``. A malformed row is therefore only noticed when it mentions the language.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import FetchRequest
from lrltool.streams import InputStream, Record

DUMP_NAME = "conceptnet-assertions-5.7.0.csv.gz"
DUMP_URL = f"https://s3.amazonaws.com/conceptnet/downloads/2019/edges/{DUMP_NAME}"
#: --match: which node languages a kept row has (start, end, wanted code) -> bool.
MATCHES: dict[str, Callable[[str, str, str], bool]] = {
    "start": lambda start, end, code: start == code,
    "either": lambda start, end, code: code in (start, end),
    "both": lambda start, end, code: start == code == end,
}
MATCH_MODES = tuple(MATCHES)
BLOCK = 4 << 20

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
    from lrltool import ui

    if request.match not in MATCH_MODES:
        raise InputError(f"unknown match mode {request.match!r}", hint=f"use one of {', '.join(MATCH_MODES)}")
    path = paths[0]
    code = request.code
    needle = f"\t/c/{code}/".encode()
    stats = request.stats
    lines = candidates = kept = 0
    with InputStream(path) as source, ui.progress(f"conceptnet {code}", source.size, unit="bytes") as bar:
        stream = source.stream
        carry = b""
        while True:
            chunk = stream.read(BLOCK)
            if not chunk:
                break
            block = carry + chunk if carry else chunk
            cut = block.rfind(b"\n") + 1  # the block's complete lines end here
            if cut == 0:
                carry = block
                continue
            line_no = lines  # number of the line before ``scanned``
            scanned = 0
            hit = block.find(needle, 0, cut)
            while hit != -1:
                begin = block.rfind(b"\n", 0, hit) + 1
                end = block.find(b"\n", hit)
                line_no += block.count(b"\n", scanned, begin) + 1
                scanned = end + 1
                candidates += 1
                record = _triple(block[begin:end], request, path, line_no)
                if record is not None:
                    kept += 1
                    yield record
                hit = block.find(needle, scanned, cut)
            # ``line_no`` counts the lines up to ``scanned``; count the rest of the block once.
            lines = line_no + block.count(b"\n", scanned, cut)
            carry = block[cut:]
            bar.update(completed=source.position(), kept=kept)
        if carry.strip():
            lines += 1
            if needle in carry:
                candidates += 1
                record = _triple(carry, request, path, lines)
                if record is not None:
                    yield record
    stats.records_in += lines
    # Rows without the language's node prefix never reach the parser: they are other languages.
    if lines > candidates:
        stats.drop("other_language", lines - candidates)


def _triple(raw: bytes, request: FetchRequest, path: Path, line: int) -> Record | None:
    """One candidate row -> a triple record, or None (dropped and counted, or rejected as malformed)."""
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
