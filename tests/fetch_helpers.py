"""Helpers shared by the fetch tests: building files in the published formats, checking error exits."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import zstandard


def cn_row(rel: str, start: str, end: str, meta: dict) -> str:
    """One assertions row exactly as the ConceptNet 5.7 dump writes it."""
    edge = f"/a/[/r/{rel}/,{start}/,{end}/]"
    return f"{edge}\t/r/{rel}\t{start}\t{end}\t{json.dumps(meta, sort_keys=True, ensure_ascii=False)}"


def write_dump(path: Path, rows: list[str], *, compression: str | None = None) -> Path:
    data = ("\n".join(rows) + "\n").encode("utf-8")
    if compression == "gzip":
        data = gzip.compress(data, mtime=0)
    elif compression == "zstd":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def jsonl(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def assert_error(result, expected: str, *, code: int = 1) -> str:
    """One line on stderr holding ``expected``, the exit status, no traceback; returns the line."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


def assert_no_output(folder: Path, *keep: str) -> None:
    """Nothing in ``folder`` but ``keep`` (no output file, no temporary file)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


def write_parquet(path: Path, columns: dict, schema=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)
    return path
