"""SIGTERM is handled as Ctrl-C by every command that writes files (cli/group.py's one handler): the
temporary output is removed, one line on stderr, exit status 143."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.paths import EXAMPLES, ROOT


def _conceptnet_lines() -> bytes:
    with gzip.open(EXAMPLES / "conceptnet" / "conceptnet-assertions-5.7.0-excerpt.csv.gz", "rb") as f:
        return b"".join(line for line in f if b"/c/ro/" in line)


def _triples() -> bytes:
    triple = {"id": "/a/1", "rel": "IsA", "start": "câine", "end": "animal", "start_lang": "ro"}
    return b"".join(
        json.dumps({**triple, "id": f"/a/{i}", "start": f"câine{i}"}).encode() + b"\n" for i in range(50)
    )


def _texts() -> bytes:
    # More than the two 4 MiB batches cap reads before it opens its output.
    line = "Vremea este frumoasă astăzi în București, spuse el încet, privind pe fereastră."
    return b"".join(json.dumps({"id": i, "text": f"{line} {i}"}).encode() + b"\n" for i in range(110_000))


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["cap", "verbalize", "fetch", "fetch-gz"])
def test_sigterm_removes_the_temporary_output_and_says_so(tmp_path, command):
    """fetch-gz: a gzip member then a stalled pipe, read by the decompressing thread, which holds the
    file's lock while it waits: the process must still end (the file is left to the exit to close)."""
    out = tmp_path / "out.jsonl.zst"
    fifo = tmp_path / "dump.csv"
    args = {
        "cap": ["cap", "-o", out],
        "verbalize": ["verbalize", "-o", out],
        "fetch": ["fetch", "conceptnet", "--lang", "ron", "--input", fifo, "-o", out],
        "fetch-gz": ["fetch", "conceptnet", "--lang", "ron", "--input", fifo, "-o", out],
    }[command]
    data = {
        "cap": _texts,
        "verbalize": _triples,
        "fetch": _conceptnet_lines,
        "fetch-gz": lambda: gzip.compress(_conceptnet_lines()),
    }[command]()
    if command.startswith("fetch"):
        os.mkfifo(fifo)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LRLTOOL_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrltool", *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    sink = proc.stdin if not command.startswith("fetch") else None

    def feed() -> None:  # write the data and keep the input open: the command waits for more
        stream = sink if sink is not None else open(fifo, "wb")  # noqa: SIM115 - closed by the test's end
        try:
            stream.write(data)
            stream.flush()
        except BrokenPipeError:
            pass
        feeding.append(stream)

    feeding: list = []
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        _wait_for(lambda: any(tmp_path.glob(".out.jsonl.zst.*.tmp")) and feeding)
        time.sleep(0.5)  # the command is now blocked reading the rest of its input
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        for stream in feeding:
            try:
                stream.close()
            except BrokenPipeError:
                pass
    assert proc.returncode == 143
    assert stderr.decode().strip().splitlines()[-1] == "terminated (SIGTERM)"
    assert "Traceback" not in stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["dump.csv"] if command.startswith("fetch") else [])


def test_an_unattributed_full_disk_or_read_only_error_is_one_line(cli, monkeypatch):
    import errno

    from lrltool.corpus import verbalize

    def fail(**kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/cache/x")

    monkeypatch.setattr(verbalize, "verbalize_triples", fail)
    result = cli(["verbalize"], input="")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: /mnt/ro/cache/x: cannot write: the file system is read-only; write elsewhere\n"
    )
    monkeypatch.setattr(verbalize, "verbalize_triples", lambda **kwargs: open("/nonexistent/x"))  # noqa: SIM115
    result = cli(["verbalize"], input="")
    assert (
        result.exit_code == 1 and "FileNotFoundError" in result.stderr and "LRLTOOL_DEBUG=1" in result.stderr
    )


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat))
    return found


def _gone(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]  # noqa: SIM115
    except OSError:
        return True
    return state == "Z"  # dead, waiting for whoever adopted it to reap it


@pytest.mark.skipif(sys.platform != "linux", reason="the forked scan is Linux's")
@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C", "SIGKILL"])
def test_several_languages_stop_with_their_scanning_process(tmp_path, how):
    """`fetch conceptnet --lang ron,mlt` scans in a forked process, here blocked on a stalled pipe.
    SIGTERM and Ctrl-C (SIGINT to the whole process group) end both processes and remove every temporary
    output; SIGKILL of the parent leaves temporary files only, never a finished-looking output, and the
    scanning process dies with it."""
    fifo = tmp_path / "dump.csv"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    args = ["fetch", "conceptnet", "--lang", "ron,mlt", "--input", fifo, "-o", f"{out}/{{lang}}.jsonl.zst"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LRLTOOL_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrltool", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        # Ctrl-C as a terminal's foreground command gets it: a test run started in the background of a
        # script ignores SIGINT, and the command would inherit that (Python then installs no handler).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with open(fifo, "wb") as feed:  # opened once the scanning process opens it for reading
        feed.write(_conceptnet_lines())
        feed.flush()
        try:
            _wait_for(lambda: len(list(out.glob(".*.tmp"))) == 2 and _children(proc.pid))
            (child,) = _children(proc.pid)
            time.sleep(0.5)  # both are now blocked: the child reading the pipe, the parent reading the child
            if how == "Ctrl-C":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                proc.send_signal(getattr(signal, how))
            _, stderr = proc.communicate(timeout=120)
            _wait_for(lambda: _gone(child), timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        assert sorted(p.suffix for p in out.iterdir()) == [".tmp", ".tmp"]
        return
    assert proc.returncode == {"SIGTERM": 143, "Ctrl-C": 130}[how]
    assert (
        stderr.decode().strip().splitlines()[-1]
        == {"SIGTERM": "terminated (SIGTERM)", "Ctrl-C": "interrupted"}[how]
    )
    assert "Traceback" not in stderr.decode()
    assert list(out.iterdir()) == []
