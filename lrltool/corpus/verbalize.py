"""``lrltool verbalize``: ConceptNet triples -> sentences ``"<start> <predicate> <end>."``.

The predicates are the 33 English templates of the paper (Table 4), shipped as ``data/relations.tsv``;
``--templates FILE`` replaces them with a user's own file in the same two-column format (for example
predicates written in the target language).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from lrltool.corpus.cap import DigestSet, text_digest
from lrltool.errors import InputError, LanguageError
from lrltool.streams import (
    Record,
    Stats,
    input_size,
    nothing_written,
    read_records,
    require,
    write_records,
)

TEMPLATE_FORM = "write one 'relation<TAB>predicate' line per relation, e.g. 'IsA<TAB>is a type of'"
_RELATION = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z0-9_]+)*")

# Keys of a triple record (docs/design.md "Records") that describe the edge; they go into the text's meta.
TRIPLE_KEYS = ("start_lang", "end_lang", "start_pos", "end_pos", "weight", "dataset", "surface")
# Keys the text record itself uses: a triple key of the same name is kept in meta instead.
TEXT_KEYS = ("id", "text", "lang", "source", "meta")


def relation_name(rel: str) -> str:
    """``IsA`` from ``IsA`` or ``/r/IsA`` (ConceptNet's URI form)."""
    return rel[3:] if rel.startswith("/r/") else rel


def parse_templates(lines: Iterable[bytes], name: str) -> dict[str, str]:
    """Relation -> predicate from TSV lines: ``relation<TAB>predicate``, ``#`` comments, an optional
    ``relation<TAB>predicate`` header. Refuses (naming ``name:line``) anything else, a relation given
    twice, and a file without templates."""
    templates: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError(
                "line is not valid UTF-8", hint="save the file as UTF-8", path=name, line=number
            ) from None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise InputError(
                f"expected 2 tab-separated columns (relation, predicate), found {len(fields)}",
                hint=TEMPLATE_FORM,
                path=name,
                line=number,
            )
        rel, predicate = (f.strip() for f in fields)
        if not templates and rel.lower() == "relation" and predicate.lower() == "predicate":
            continue  # the header
        rel = relation_name(rel)
        if not _RELATION.fullmatch(rel):
            raise InputError(
                f"'{rel}' is not a relation name (letters, digits, '_', no spaces)",
                hint=TEMPLATE_FORM,
                path=name,
                line=number,
            )
        if not predicate:
            raise InputError(
                f"relation '{rel}' has an empty predicate", hint=TEMPLATE_FORM, path=name, line=number
            )
        if rel in templates:
            raise InputError(
                f"relation '{rel}' is given twice (first on line {first_line[rel]})",
                hint="keep one predicate per relation",
                path=name,
                line=number,
            )
        templates[rel] = predicate
        first_line[rel] = number
    if not templates:
        raise InputError("no templates in the file", hint=TEMPLATE_FORM, path=name)
    return templates


@functools.cache
def default_templates() -> dict[str, str]:
    """The paper's 33 templates (``data/relations.tsv``)."""
    data = resources.files("lrltool.data").joinpath("relations.tsv").read_bytes()
    return parse_templates(data.splitlines(keepends=True), "relations.tsv")


def load_templates(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The templates of ``path`` (a user's TSV), or the paper's when None."""
    if path is None:
        return dict(default_templates())
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError("no such templates file", hint="check the path", path=str(p)) from None
    except IsADirectoryError:
        raise InputError("expected a templates file, found a folder", path=str(p)) from None
    except PermissionError:
        raise InputError("cannot read the templates file (permission denied)", path=str(p)) from None
    return parse_templates(data.splitlines(keepends=True), str(p))


@functools.cache
def _flores_codes() -> dict[str, str]:
    from lrltool.languages import registry

    codes: dict[str, str] = {}
    for lang in registry():
        codes.setdefault(lang.conceptnet, lang.flores)
    return codes


@functools.cache
def text_language(conceptnet_code: str | None) -> str | None:
    """The language code (``ro`` -> ``ron_Latn``, ``fo`` -> ``fao_Latn``) of a ConceptNet code; as given
    when it names no one language (``sh``)."""
    if conceptnet_code is None:
        return None
    if conceptnet_code in _flores_codes():
        return _flores_codes()[conceptnet_code]
    from lrltool.languages import resolve_language

    try:
        return resolve_language(conceptnet_code).code
    except LanguageError:
        return conceptnet_code


def verbalize_triple(triple: Record, templates: dict[str, str]) -> tuple[Record | None, str | None]:
    """``(text record, None)`` for a triple, or ``(None, reason)`` when it is not verbalized.

    Reasons: ``self_loop`` (start and end are the same word, ignoring case), ``no_template:<rel>``.
    Raises :class:`InputError` for a triple without a string id, rel, start or end, or with an empty one.
    """
    edge = require(triple, "id", what="triple")
    rel = relation_name(require(triple, "rel", what="triple"))
    start = require(triple, "start", what="triple").strip()
    end = require(triple, "end", what="triple").strip()
    for key, value in (("rel", rel), ("start", start), ("end", end)):
        if not value:
            raise InputError(f"triple field '{key}' is empty", hint=f"give each triple a non-empty '{key}'")
    if start.casefold() == end.casefold():
        return None, "self_loop"
    predicate = templates.get(rel)
    if predicate is None:
        return None, f"no_template:{rel}"
    lang = triple.get("start_lang") or triple.get("end_lang")
    meta: dict[str, Any] = {"rel": rel, "edge": edge, "start": start, "end": end}
    record: Record = {
        "id": edge,
        "text": f"{start} {predicate} {end}.",
        "lang": text_language(lang if isinstance(lang, str) else None),
        "source": "conceptnet",
        "meta": meta,
    }
    for key, value in triple.items():
        if key in ("id", "rel", "start", "end"):
            continue
        if key in TRIPLE_KEYS or key in TEXT_KEYS:
            meta.setdefault(key, value)
        else:
            record[key] = value  # unknown keys pass through unchanged
    return record, None


def edge_nodes(edge: str) -> tuple[str, str, str] | None:
    """``(rel, start, end)`` URIs of a ConceptNet edge URI ``/a/[/r/IsA/,/c/fr/test/n/wikt/fr_2/,/c/fr/x/]``
    (the triple record's ``id``); None when ``edge`` is not of that form."""
    if not (edge.startswith("/a/[") and edge.endswith("]")):
        return None
    parts = edge[4:-1].split("/,/")
    if len(parts) != 3:
        return None
    rel, start, end = parts
    return rel.rstrip("/"), "/" + start.rstrip("/"), "/" + end.rstrip("/")


def paper_verbalize_triple(triple: Record, templates: dict[str, str]) -> tuple[Record | None, str | None]:
    """What src/conceptnet/cn_to_nl.py:43-62 does with a triple (``verbalize --paper-compat``): the words
    are the last ``/`` segment of each node URI with ``_`` -> space (``/c/fr/test/n/wikt/fr_2`` gives
    ``fr 2``, ``/c/ro/câine/n`` gives ``n``), the relation the last segment of its URI; dropped only when
    start == end exactly (``self_loop``) or the relation has no template. The URIs come from the edge
    URI (the record's ``id``); a record whose id is no edge URI is refused (InputError)."""
    edge = require(triple, "id", what="triple")
    nodes = edge_nodes(edge)
    if nodes is None:
        raise InputError(
            f"'{edge[:60]}' is not a ConceptNet edge URI (/a/[/r/.../,/c/.../,/c/.../])",
            hint="--paper-compat reads the node URIs from the id that 'fetch conceptnet' writes",
        )
    rel = nodes[0].split("/")[-1]
    start, end = (uri.split("/")[-1].replace("_", " ") for uri in nodes[1:])
    if start == end:
        return None, "self_loop"
    predicate = templates.get(rel)
    if predicate is None:
        return None, f"no_template:{rel}"
    lang = triple.get("start_lang") or triple.get("end_lang")
    record: Record = {
        "id": edge,
        "text": f"{start} {predicate} {end}.",
        "lang": text_language(lang if isinstance(lang, str) else None),
        "source": "conceptnet",
        "meta": {"rel": rel, "edge": edge, "start": start, "end": end, "paper_compat": True},
    }
    return record, None


def verbalize_records(
    triples: Iterable[Record],
    *,
    templates: dict[str, str],
    keep_duplicates: bool = False,
    stats: Stats | None = None,
    reject: Any = None,
    paper_compat: bool = False,
) -> Iterator[Record]:
    """Text records for ``triples`` in order; drops self-loops, relations without a template and (unless
    ``keep_duplicates``) sentences seen before, counting each in ``stats`` by reason. A bad triple goes to
    ``reject(error)`` (which raises or counts it), or raises when ``reject`` is None. ``paper_compat``:
    :func:`paper_verbalize_triple` instead of :func:`verbalize_triple`, duplicates kept."""
    seen = None if keep_duplicates or paper_compat else DigestSet()
    one = paper_verbalize_triple if paper_compat else verbalize_triple
    for triple in triples:
        try:
            record, reason = one(triple, templates)
        except InputError as exc:
            if reject is None:
                raise
            reject(exc)
            continue
        if record is None:
            if stats is not None:
                stats.drop(reason or "unknown")
            continue
        if seen is not None and not seen.add(text_digest(record["text"].encode())):
            if stats is not None:
                stats.drop("duplicate")
            continue
        if stats is not None:
            stats.records_out += 1
        yield record


def verbalize_triples(
    *,
    input_path: str | os.PathLike[str] = "-",
    output: str | os.PathLike[str] = "-",
    templates_path: str | os.PathLike[str] | None = None,
    keep_duplicates: bool = False,
    skip_bad_lines: bool = False,
    paper_compat: bool = False,
) -> Stats:
    """Read triple records (``fetch conceptnet``) from ``input_path``, write text records to ``output``.

    Reads JSONL (plain/.gz/.zst, ``-`` = stdin) triples with string ``id``, ``rel``, ``start``, ``end``;
    writes ``{"id", "text", "lang", "source": "conceptnet", "meta": {"rel", "edge", "start", "end", ...}}``
    (``-`` = stdout, compressed by suffix, renamed into place on success). ``lang`` is the FLORES code of
    the start node's language when the registry knows it, else the code as given. The triple's other
    known keys go into ``meta``, unknown keys pass through at the top level. Refuses a bad templates
    file, a line that is not a JSON object and a triple without its keys (unless ``skip_bad_lines``),
    and input that gives no sentence (writing nothing, as every command does; :func:`nothing_written`).
    ``paper_compat``: the paper's verbalizer (:func:`paper_verbalize_triple`), duplicates kept.
    """
    from lrltool import ui

    templates = load_templates(templates_path)
    stats = Stats("verbalize")
    reader = read_records(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    with (
        write_records(output) as out,
        ui.progress("verbalize", total=input_size(input_path), unit="bytes") as bar,
    ):
        for n, record in enumerate(
            verbalize_records(
                reader,
                templates=templates,
                keep_duplicates=keep_duplicates,
                stats=stats,
                reject=reader.reject,
                paper_compat=paper_compat,
            )
        ):
            out.write(record)
            if n % 4096 == 0:
                bar.update(completed=reader.position(), kept=stats.records_out)
        if out.count == 0:  # inside the with: nothing is written
            raise nothing_written(stats, reader.name, "sentences")
    return stats
