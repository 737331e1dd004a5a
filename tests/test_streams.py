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
    input_size,
    read_records,
    require,
    write_record_files,
    write_records,
)

RECORDS = [{"id": str(i), "text": f"propoziția {i} — ă î ș ț", "n": i} for i in range(2000)]


def test_input_size_is_a_regular_files_size_and_none_otherwise(tmp_path):
    """The progress total of cap, verbalize and fetch conceptnet: None where there is no size to show."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x" * 1234)
    assert input_size(path) == 1234
    assert input_size(str(path)) == 1234
    assert input_size("-") is None
    assert input_size(tmp_path) is None  # a folder: its error comes from reading it
    assert input_size(tmp_path / "missing.jsonl") is None


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


def test_records_to_stdout_are_buffered_even_unbuffered(tmp_path):
    """PYTHONUNBUFFERED (python -u, common in container images) leaves sys.stdout.buffer a bare file;
    records still arrive whole and in order, through one buffer, and what was printed before them
    comes first."""
    import os
    import subprocess

    from tests.paths import ROOT

    code = (
        "import sys\n"
        "from lrltool.streams import _Stdout, write_records\n"
        "print('first', flush=False)\n"
        "with write_records('-') as w:\n"
        "    for i in range(5000): w.write({'i': i, 'text': 'x' * (i % 50)})\n"
        "sys.stderr.write(type(_Stdout().stream).__name__)\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "first"
    assert [orjson.loads(line) for line in lines[1:]] == [
        {"i": i, "text": "x" * (i % 50)} for i in range(5000)
    ]
    assert result.stderr.decode() == "BufferedWriter"


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


# --- special targets, modes, failed writes --------------------------------------------------------


def _char_device(path, minor: int):
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7) in the test's folder (needs root)."""
    import os
    import stat

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        with open(path, "wb") as probe:  # a nodev mount would refuse to open it
            probe.write(b"")
    except OSError:
        pytest.skip("making a device node needs root and a mount that allows devices")
    return path


def test_a_symlink_is_followed_and_its_target_replaced_atomically(tmp_path):
    target = tmp_path / "data" / "real.jsonl"
    target.parent.mkdir()
    target.write_bytes(b'{"old": 1}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to("data/real.jsonl")
    with write_records(link) as out:
        out.write({"new": 2})
    assert link.is_symlink() and link.readlink().as_posix() == "data/real.jsonl"
    assert target.read_bytes() == b'{"new":2}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.jsonl"]  # no temporary file left
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to("data/new.jsonl")
    with write_records(dangling) as out:
        out.write({"a": 1})
    assert dangling.is_symlink() and (target.parent / "new.jsonl").read_bytes() == b'{"a":1}\n'


def test_an_existing_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    import os
    import stat

    private = tmp_path / "private.jsonl"
    private.write_bytes(b"")
    private.chmod(0o600)
    with write_records(private) as out:
        out.write({"a": 1})
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    old = os.umask(0o077)
    try:
        with write_records(tmp_path / "new.jsonl.zst") as out:
            out.write({"a": 1})
        from lrltool.streams import atomic_dir

        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "x").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.jsonl.zst").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o700
    with write_records(tmp_path / "default.jsonl") as out:
        out.write({"a": 1})
    assert stat.S_IMODE((tmp_path / "default.jsonl").stat().st_mode) == 0o666 & ~old


def test_a_named_pipe_is_written_directly_to_its_reader(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with write_records(fifo) as out:
        out.write_all(RECORDS[:3])
    reader.join(timeout=30)
    assert received == [_jsonl(RECORDS[:3])]
    assert fifo.is_fifo() and list(tmp_path.iterdir()) == [fifo]


def test_a_character_device_is_written_directly(tmp_path):
    null = _char_device(tmp_path / "null", 3)
    with write_records(null) as out:
        out.write_all(RECORDS)
    assert null.is_char_device() and list(tmp_path.iterdir()) == [null]


def test_a_full_device_gives_one_line_naming_it(cli, tmp_path):
    full = _char_device(tmp_path / "full", 7)
    source = tmp_path / "in.jsonl"
    source.write_bytes(_jsonl(RECORDS))
    result = cli(["cap", source, "-o", full, "--workers", "1"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {full}: cannot write: the disk is full (no space left on device);"
        " free some space, or write elsewhere"
    ]
    assert full.is_char_device() and sorted(tmp_path.iterdir()) == [full, source]


def test_folders_and_sockets_are_refused_as_outputs(tmp_path):
    import socket

    from lrltool.errors import UsageError

    with pytest.raises(UsageError, match="the output is a folder"), write_records(tmp_path) as out:
        out.write({"a": 1})
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(UsageError, match="neither a file"), write_records(path) as out:
            out.write({"a": 1})


@pytest.mark.parametrize("where", ["write", "close", "rename"])
def test_a_full_disk_leaves_nothing_and_says_so(tmp_path, monkeypatch, where):
    import errno
    import os

    from lrltool.errors import OutputError
    from lrltool.streams import AtomicFile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "out.jsonl.zst"
    if where == "close":
        monkeypatch.setattr(AtomicFile, "finish", lambda self: full())
    elif where == "rename":
        monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError) as caught, write_records(path) as out:
        out.write({"a": 1})
        if where == "write":
            full()
    assert str(caught.value) == (
        f"{path}: cannot write: the disk is full (no space left on device);"
        " free some space, or write elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_and_a_failed_group_say_so(tmp_path, monkeypatch):
    import errno
    import os
    import tempfile

    from lrltool.errors import OutputError
    from lrltool.streams import AtomicFile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(OutputError, match=r"out\.jsonl: cannot write: the file system is read-only"):
            write_records(tmp_path / "out.jsonl").__enter__()
    paths = {s: tmp_path / f"{s}.jsonl" for s in ("train", "test")}
    finished = []

    def finish_then_fail(self):
        finished.append(self.path.name)
        if len(finished) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._file.close()

    monkeypatch.setattr(AtomicFile, "finish", finish_then_fail)
    with pytest.raises(OutputError, match="the disk is full"), write_record_files(paths) as outs:
        outs["train"].write({"a": 1})
    assert finished == ["train.jsonl", "test.jsonl"] and list(tmp_path.iterdir()) == []


def test_torch_and_safetensors_messages_of_a_full_disk_are_recognised(tmp_path):
    from lrltool.streams import write_error

    torch_message = RuntimeError(
        "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: No space left on device"
    )
    rust = Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: ... })")
    for exc in (torch_message, rust):
        assert "the disk is full" in str(write_error(exc, tmp_path / "x"))
    assert write_error(RuntimeError("shape mismatch"), tmp_path / "x") is None
    assert write_error(ValueError("bad"), tmp_path / "x") is None


def test_record_writer_writes_the_bytes_of_jsonlines_with_orjson():
    import io

    import jsonlines
    import orjson

    from lrltool.streams import RecordWriter

    records = [
        {"id": "/a/[/r/IsA/,/c/ro/câine/n/,/c/ro/animal/]", "weight": 1.0, "surface": None},
        {"text": 'Ţară\tcu\u00a0spaţii "citate" şi \\ emoji 🦊', "n": [1, 2.5, -3e-9], "ok": True},
        {},
    ]
    ours, theirs = io.BytesIO(), io.BytesIO()
    writer = RecordWriter(ours)
    for record in records:
        writer.write(record)
    with jsonlines.Writer(theirs, dumps=orjson.dumps) as reference:
        reference.write_all(records)
    assert ours.getvalue() == theirs.getvalue() and writer.count == 3
    assert ours.getvalue().count(b"\n") == 3


def test_a_failed_output_removes_the_folders_made_for_it_and_keeps_the_others(tmp_path):
    """Nothing half-written: missing folders made for an output go again when it fails (deepest first,
    while empty, whichever of several outputs fails last), and folders that were there stay."""
    from lrltool.streams import atomic_dir, check_writable

    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError), write_records(kept / "a" / "b" / "out.jsonl") as out:
        out.write({"a": 1})
        assert (kept / "a" / "b").is_dir()
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == [kept] and list(kept.iterdir()) == []
    paths = {lang: tmp_path / "new" / f"{lang}.jsonl.zst" for lang in ("ron", "mlt", "bul")}
    with pytest.raises(RuntimeError), write_record_files(paths) as outs:
        outs["mlt"].write({"a": 1})
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == [kept]
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "x" / "adapter") as folder:
        (folder / "weights").write_bytes(b"1")
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == [kept]
    check_writable(tmp_path / "y" / "z" / "out.jsonl")  # a probe leaves nothing
    assert list(tmp_path.iterdir()) == [kept]
    with write_records(tmp_path / "new" / "ron.jsonl") as out:
        out.write({"a": 1})
    with pytest.raises(RuntimeError), write_records(tmp_path / "new" / "sub" / "mlt.jsonl") as out:
        raise RuntimeError("failed")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "kept",
        "new",
        "new/ron.jsonl",
    ]


def test_a_failed_several_language_fetch_leaves_no_folder(cli, tmp_path):
    dump = tmp_path / "dump.csv.gz"
    good = '/a/[/r/IsA/,/c/ro/câine/n/,/c/ro/animal/]\t/r/IsA\t/c/ro/câine/n\t/c/ro/animal\t{"weight": 1.0}'
    bad = "/a/[/r/IsA/,/c/mt/kelb/,/c/mt/annimal/]\t/r/IsA\t/c/mt/kelb\t/c/mt/annimal"
    dump.write_bytes(gzip.compress(f"{good}\n{bad}\n".encode()))
    out = tmp_path / "out" / "sub"
    result = cli(["fetch", "conceptnet", "--lang", "ron,mlt", "-i", dump, "-o", out / "{lang}.jsonl.zst"])
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {dump}:2:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [dump]
