"""Read back what ``--report-to wandb`` logged: the offline run's ``.wandb`` file, a LevelDB-style log of
wandb's own protobuf ``Record`` messages (wandb 0.31 has no Python reader of it any more; ``wandb sync``
reads it in Go). Tests compare it with log.jsonl."""

from __future__ import annotations

import ast
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

BLOCK = 32 * 1024  # the log's block size; a record header (crc32, length, type) never straddles a block
HEADER = 7  # the file header: b":W&B", magic 0xBEE1, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    """The protobuf records of one ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, pending, records = HEADER, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # the block's tail is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    """An item's key: in ``key``, or in ``nested_key`` (a list of parts) as wandb-core writes it."""
    return item.key or ".".join(item.nested_key)


def wandb_run(run_dir: Path) -> tuple[list[dict], dict]:
    """(history rows as {key: value}, config {key: value}) of the one offline wandb run under RUN/wandb."""
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    history, config = [], {}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "config":
            config.update({_key(item): json.loads(item.value_json) for item in record.config.update})
    return history, config


#: Runs lrltool's CLI with every host-name lookup and every non-local socket connection of the process
#: recorded, and prints them to stderr at exit, after wandb's own exit handlers (its telemetry exports then).
_SPY = """
import atexit, socket, sys
seen = []
atexit.register(lambda: sys.stderr.write("\\nNETWORK " + repr(seen) + "\\n"))
real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect
def lookup(host, *args, **kwargs):
    seen.append(("lookup", host))
    return real_lookup(host, *args, **kwargs)
def connect(self, address):
    if self.family != socket.AF_UNIX:
        seen.append(("connect", address))
    return real_connect(self, address)
socket.getaddrinfo, socket.socket.connect = lookup, connect
from lrltool.cli import app
app(sys.argv[1:], prog_name="lrltool")
"""


def run_offline_wandb(args: list, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list]:
    """``lrltool ARGS`` in a fresh process (skips without wandb) with WANDB_MODE unset (lrltool must make
    it offline) and wandb's cache and config folders in tmp_path: (the process, its network use)."""
    pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        env[name] = str(tmp_path / "wandb-home" / name.lower())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _SPY, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    marker = proc.stderr.rfind("\nNETWORK ")
    assert marker >= 0, proc.stderr
    return proc, ast.literal_eval(proc.stderr[marker + len("\nNETWORK ") :].strip())
