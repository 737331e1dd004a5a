from __future__ import annotations

import gzip
import io
import sys

import orjson
import pytest
import zstandard

from lrltool.errors import InputError
from lrltool.streams import (
    RecordReader,
    Stats,
    atomic_output,
    read_records,
    require,
    write_record_files,
    write_records,
)

RECORDS = [{"id": str(i), "text": f"propoziția {i} — ă î ș ț", "n": i} for i in range(2000)]


def _jsonl(records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_write_then_read_round_trip(tmp_path, suffix):
    path = tmp_path / f"out.jsonl{suffix}"
    with write_records(path) as out:
        out.write_all(RECORDS)
    raw = path.read_bytes()
    if suffix == ".zst":
        assert raw[:4] == b"\x28\xb5\x2f\xfd"
    elif suffix == ".gz":
        assert raw[:2] == b"\x1f\x8b"
    else:
        assert raw == _jsonl(RECORDS)
    assert list(read_records(path)) == RECORDS
    # No temporary file is left beside the output.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress, lambda b: b])
def test_compression_detected_by_magic_not_suffix(tmp_path, compress):
    path = tmp_path / "data.weird"
    path.write_bytes(compress(_jsonl(RECORDS[:10])))
    assert list(read_records(path)) == RECORDS[:10]


def test_zstd_with_several_frames(tmp_path):
    cctx = zstandard.ZstdCompressor()
    path = tmp_path / "multi.zst"
    path.write_bytes(cctx.compress(_jsonl(RECORDS[:5])) + cctx.compress(_jsonl(RECORDS[5:9])))
    assert list(read_records(path)) == RECORDS[:9]


def test_stdin_is_read_when_path_is_dash(monkeypatch):
    data = zstandard.ZstdCompressor().compress(_jsonl(RECORDS[:3]))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert list(read_records("-")) == RECORDS[:3]


def test_records_know_their_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    reader = read_records(path)
    seen = [(rec["a"], reader.line) for rec in reader]
    assert seen == [(1, 1), (2, 3), (3, 4)]


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(InputError) as err:
        list(read_records(path))
    assert str(err.value) == f"{path}:2: line is not valid JSON; expected one JSON object per line"


def test_non_object_line_is_an_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=r":2: expected a JSON object, found a JSON list"):
        list(read_records(path))


def test_skip_bad_lines_counts_them(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\nnot json\n"str"\n{"a": 4}\n')
    stats = Stats("test")
    assert [r["a"] for r in read_records(path, skip_bad_lines=True, stats=stats)] == [1, 4]
    assert stats.dropped["bad_line"] == 2


def test_reject_locates_a_record_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n{"txt": "b"}\n')
    reader = RecordReader(path)
    with pytest.raises(InputError) as err:
        for record in reader:
            try:
                require(record, "text")
            except InputError as exc:
                reader.reject(exc)
    assert str(err.value) == (
        f"{path}:2: record has no 'text' key; each line must be a JSON object with a 'text' field"
    )


def test_require_checks_the_type():
    with pytest.raises(InputError, match="field 'text' is int, expected str"):
        require({"text": 3}, "text")
    assert require({"n": 2}, "n", int) == 2


@pytest.mark.parametrize("suffix", [".zst", ".gz"])
def test_truncated_compressed_file_is_an_input_error(tmp_path, suffix):
    path = tmp_path / f"in.jsonl{suffix}"
    with write_records(path) as out:
        out.write_all(RECORDS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated file"):
        list(read_records(path))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_records(tmp_path / "nope.jsonl"))


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.jsonl.zst"
    with pytest.raises(RuntimeError), write_records(path) as out:
        out.write({"a": 1})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_grouped_outputs_appear_together_or_not_at_all(tmp_path):
    paths = {s: tmp_path / f"{s}.jsonl.zst" for s in ("train", "validation", "test")}
    with pytest.raises(KeyError), write_record_files(paths) as outs:
        outs["train"].write({"a": 1})
        raise KeyError("x")
    assert list(tmp_path.iterdir()) == []
    with write_record_files(paths) as outs:
        outs["train"].write({"a": 1})
        outs["test"].write({"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    assert list(read_records(paths["validation"])) == []
    assert list(read_records(paths["test"])) == [{"a": 2}]


def test_atomic_output_to_stdout(capsysbinary):
    with atomic_output("-") as out:
        out.write(b"hello\n")
    assert capsysbinary.readouterr().out == b"hello\n"


def test_stats_summary_line_and_json(tmp_path):
    stats = Stats("cap")
    stats.records_in = 10
    stats.records_out = 7
    stats.drop("duplicate", 2)
    stats.drop("too_short")
    stats.extra["bytes"] = 1234
    assert stats.line() == "cap: 10 in, 7 out; dropped 3 (duplicate 2, too_short 1); bytes 1,234"
    stats.finish(tmp_path / "s.json")
    assert orjson.loads((tmp_path / "s.json").read_bytes()) == {
        "command": "cap",
        "records_in": 10,
        "records_out": 7,
        "dropped": {"duplicate": 2, "too_short": 1},
        "bytes": 1234,
    }
