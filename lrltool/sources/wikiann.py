"""WikiANN named entities -> NER records (tokens and tag names), one file per split.

Published format (hub dataset ``unimelb-nlp/wikiann``, formerly ``wikiann``): parquet per language,
``<iso1>/{train,validation,test}-*.parquet`` on ``main`` (docs/design.md; the repository's commit
history shows the parquet converter's ``<iso1>/<split>/0000.parquet`` layout too, so both are read). Columns
``tokens`` (list of strings), ``ner_tags`` (list of ClassLabel ints: 0 O, 1 B-PER, 2 I-PER, 3 B-ORG,
4 I-ORG, 5 B-LOC, 6 I-LOC, as docs/design.md gives them), ``langs``, ``spans``. Not confirmed here: the
dataset card's ClassLabel list itself, and the exact shard names (every matching file is read).

Records: ``{"id": "<split>:<row>", "tokens": [...], "tags": ["O", "B-PER", ...]}``. A row whose tags are
out of range or whose lengths differ is bad input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import (
    FetchRequest,
    locate_splits,
    parquet_batches,
)
from lrltool.streams import Record

REPO = "unimelb-nlp/wikiann"
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
_WHAT = "WikiANN parquet (columns tokens, ner_tags)"


def _patterns(code: str, split: str) -> list[str]:
    return [
        f"{code}/{split}-*.parquet",
        f"{code}/{split}/*.parquet",
        f"{split}-*.parquet",
        f"{split}/*.parquet",
    ]


def locate(request: FetchRequest, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    code = request.code
    return locate_splits(
        request,
        splits,
        download=lambda: hub.snapshot(
            REPO,
            [f"{code}/{split}-*.parquet" for split in splits],
            revision=request.revision,
            what=f"WikiANN {code} splits",
        ),
        patterns=lambda split: _patterns(code, split),
        what=lambda split: f"WikiANN {split} split for {code}",
        hint="give the folder of the published layout (check the code with --code)",
    )


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    stats = request.stats
    row = 0
    for path in paths:
        for batch in parquet_batches(path, ["tokens", "ner_tags"], ["tokens", "ner_tags"], what=_WHAT):
            for tokens, tag_ids in zip(batch["tokens"], batch["ner_tags"], strict=True):
                row += 1
                stats.records_in += 1
                try:
                    tags = _tag_names(tokens, tag_ids)
                except InputError as exc:
                    request.reject(InputError(f"row {row}: {exc.message}", hint=exc.hint), path)
                    continue
                if not tokens:
                    stats.drop("empty_sentence")
                    continue
                yield {"id": f"{split}:{row}", "tokens": tokens, "tags": tags}


def _tag_names(tokens: object, tag_ids: object) -> list[str]:
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise InputError("'tokens' is not a list of strings", hint=f"expected {_WHAT}")
    if not isinstance(tag_ids, list) or len(tag_ids) != len(tokens):
        found = len(tag_ids) if isinstance(tag_ids, list) else type(tag_ids).__name__
        raise InputError(f"{len(tokens)} tokens but {found} tags", hint="each token needs one tag")
    names = []
    for tag in tag_ids:
        if isinstance(tag, str) and tag in TAGS:  # some re-exports store the names
            names.append(tag)
        elif isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(TAGS):
            names.append(TAGS[tag])
        else:
            raise InputError(
                f"unknown tag {tag!r}", hint=f"WikiANN tags are 0-{len(TAGS) - 1} ({', '.join(TAGS)})"
            )
    return names
