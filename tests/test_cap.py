"""`lrltool cap`: cleaning, exact dedup, the byte cap, splits, and the bad inputs it refuses."""

from __future__ import annotations

import hashlib
import random
import unicodedata

import numpy as np
import orjson
import pytest
import zstandard

from lrltool.corpus.cap import (
    BAD_LINE,
    BAD_RECORD,
    CANDIDATE,
    EMPTY,
    TOO_SHORT,
    CleanOptions,
    DigestSet,
    cap_records,
    clean_batch,
    clean_text,
    parse_size,
    parse_split,
    split_index,
    split_thresholds,
    text_digest,
)
from lrltool.errors import InputError, UsageError
from lrltool.streams import read_records, write_records

# ---------------------------------------------------------------------------------------------------
# An independent reference: the cleaning and capping rules written as plainly as possible.


def reference_clean(text: str) -> str:
    kept = "".join(c for c in text if not (unicodedata.category(c) == "Cc" and not c.isspace()))
    return unicodedata.normalize("NFC", " ".join(kept.split()))


def reference_cap(records, *, max_bytes=None, min_chars=1, dedup=True):
    seen, out, total = set(), [], 0
    for record in records:
        text = reference_clean(record["text"])
        if not text or len(text) < min_chars:
            continue
        if dedup:
            if text in seen:
                continue
            seen.add(text)
        size = len(text.encode("utf-8"))
        if max_bytes is not None and total + size > max_bytes:
            break
        total += size
        out.append({**record, "text": text})
    return out


PIECES = ["a", "b", "cd", "ăî", "ș", "ț", " ", "  ", "\n", "\t", "\r\n", "\x00", "\x07", "\x1b",
          "\x7f", "\x85", "\x9f", "\xa0", "\u2028", "\u3000", "e\u0301", "\u0301", "\u200c", "A\u030a",
          "\u212b", "."]  # fmt: skip


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(n):
        if texts and rng.random() < 0.15:
            texts.append(rng.choice(texts))  # an exact duplicate
        else:
            texts.append("".join(rng.choices(PIECES, k=rng.randint(0, 30))))
    return texts


def jsonl(records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def read_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line]


# ---------------------------------------------------------------------------------------------------
# Sizes and splits


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("12345", 12345),
        ("100k", 100_000),
        ("100K", 100_000),
        ("100kB", 100_000),
        ("500M", 500_000_000),
        ("500MB", 500_000_000),
        ("1G", 1_000_000_000),
        ("1g", 1_000_000_000),
        ("2T", 2_000_000_000_000),
        ("1.5G", 1_500_000_000),
        ("2 MB", 2_000_000),
        ("512KiB", 524_288),
        ("500MiB", 524_288_000),
        ("1GiB", 1_073_741_824),
        ("1gib", 1_073_741_824),
        ("1Gi", 1_073_741_824),
        ("1TiB", 1_099_511_627_776),
        ("7B", 7),
    ],
)
def test_parse_size_forms(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "1X", "-5", "0", "0.1", "1e9", "1.2.3", "1 G B", "ten"])
def test_parse_size_refuses_other_forms(text):
    with pytest.raises(UsageError) as err:
        parse_size(text)
    assert "1GiB (powers of 1024)" in str(err.value)
    assert err.value.exit_code == 2


def test_parse_split_keeps_order_and_values():
    assert list(parse_split("train=0.8,validation=0.1,test=0.1").items()) == [
        ("train", 0.8),
        ("validation", 0.1),
        ("test", 0.1),
    ]
    assert parse_split(" test = 0.25 , train=0.75") == {"test": 0.25, "train": 0.75}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=0.8,test=0.1", "sum to 0.9, not 1"),
        ("train=0.5,train=0.5", "split 'train' is given twice"),
        ("train", "cannot read 'train'"),
        ("train=abc,test=1", "'abc' is not a fraction"),
        ("train=0,test=1", "fraction 0 of 'train' is not in (0, 1]"),
        ("a/b=1", "cannot read 'a/b=1'"),
        ("", "cannot read ''"),
    ],
)
def test_parse_split_refuses(text, message):
    with pytest.raises(UsageError) as err:
        parse_split(text)
    assert message in str(err.value)
    assert "train=0.8,validation=0.1,test=0.1" in str(err.value)


def test_split_assignment_is_deterministic_and_proportional():
    thresholds = split_thresholds(parse_split("train=0.8,validation=0.1,test=0.1"))
    ids = [f"doc-{i}" for i in range(5000)]
    first = [split_index(i, 42, thresholds) for i in ids]
    assert first == [split_index(i, 42, thresholds) for i in ids]
    counts = np.bincount(first, minlength=3)
    # Binomial standard deviations: 28 for train, 21 for the others; allow 4 of them.
    assert abs(counts[0] - 4000) < 113 and abs(counts[1] - 500) < 85 and abs(counts[2] - 500) < 85
    # The same rule written out: the first 8 bytes of blake2b("seed:id") as a fraction of 2**64.
    for record_id, index in zip(ids[:200], first[:200], strict=True):
        u = int.from_bytes(hashlib.blake2b(f"42:{record_id}".encode(), digest_size=8).digest(), "little")
        assert index == (0 if u < 0.8 * 2**64 else 1 if u < 0.9 * 2**64 else 2)
    other_seed = [split_index(i, 7, thresholds) for i in ids]
    assert 0.6 < np.mean(np.array(first) == np.array(other_seed)) < 0.75  # about 0.8^2 + 2 * 0.1^2


# ---------------------------------------------------------------------------------------------------
# Cleaning


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("e\u0301te\u0301", "été"),  # NFC composes
        ("\u212b", "Å"),  # a canonical singleton
        ("a\x00b\x07c\x7fd\x9fe", "abcde"),  # control characters (C0, DEL, C1) removed
        ("a \x1b b", "a b"),  # ... without leaving two spaces
        ("e\x00\u0301", "é"),  # ... nor an uncomposed pair
        ("  a\t\tb\n\nc \r\n d  ", "a b c d"),  # whitespace runs -> one space, ends stripped
        ("a\xa0b\u2028c\u3000d\x85e", "a b c d e"),  # Unicode whitespace too
        ("paragraf unu.\nparagraf doi.", "paragraf unu. paragraf doi."),
        ("zero\u200cwidth\u200d", "zero\u200cwidth\u200d"),  # format characters (Cf) stay
        ("  \n\t ", ""),
        ("plain ascii", "plain ascii"),
    ],
)
def test_clean_text_examples(text, cleaned):
    assert clean_text(text) == cleaned


def test_clean_text_equals_the_reference_and_is_idempotent():
    for text in random_texts(3000, seed=1):
        cleaned = clean_text(text)
        assert cleaned == reference_clean(text), repr(text)
        assert clean_text(cleaned) == cleaned


def test_clean_batch_statuses_errors_and_lines():
    data = jsonl(
        [
            {"id": "1", "text": " Ana  are\tmere ", "meta": {"k": 1}},
            {"id": "2", "text": "\x00 \n"},
            {"id": "3", "text": "ab"},
        ]
    )
    data += b'{"id": "4"}\n\nnot json\n[1]\n{"id": "5", "text": "st"}\n'
    batch = clean_batch(data, 10, CleanOptions(min_chars=3))
    assert list(batch.statuses) == [CANDIDATE, EMPTY, TOO_SHORT, BAD_RECORD, BAD_LINE, BAD_RECORD, TOO_SHORT]
    assert batch.errors == [
        (3, 13, "record has no 'text' key", "each line must be a JSON object with a 'text' field"),
        (4, 15, "line is not valid JSON", "expected one JSON object per line"),
        (5, 16, "expected a JSON object, found a JSON list", "write one JSON object per line"),
    ]
    assert batch.lines == b'{"id":"1","text":"Ana are mere","meta":{"k":1}}\n'
    assert np.frombuffer(batch.sizes, np.int64).tolist() == [12]
    assert (
        batch.digests
        == hashlib.blake2b(b"Ana are mere", digest_size=8).digest()
        == text_digest(b"Ana are mere")
    )


# ---------------------------------------------------------------------------------------------------
# The duplicate filter


def test_digest_set_matches_a_python_set():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 2**64, size=20000, dtype=np.uint64)
    pool[:3] = [0, 1, 2]  # 0 is stored as 1: the two count as one digest
    reference: set[int] = set()
    seen = DigestSet()
    for _ in range(20):
        keys = rng.choice(pool, size=3000)
        new = seen.add_batch(keys.astype("<u8").tobytes())
        expected = []
        for key in keys.tolist():
            key = key or 1
            expected.append(key not in reference)
            reference.add(key)
        assert new.tolist() == expected
    assert len(seen) == len(reference)
    # One at a time (verbalize's way) agrees with the table built in batches.
    for key in [*pool[:2000].tolist(), 2**64 - 5, 2**64 - 5]:
        assert seen.add(int(key).to_bytes(8, "little")) is ((key or 1) not in reference)
        reference.add(key or 1)
    assert len(seen) == len(reference)
    # At most 1/2 full, so 16 to 32 bytes a digest.
    assert 16 <= seen.nbytes / len(seen) <= 32


def test_digest_set_single_adds_grow_the_table():
    seen = DigestSet(capacity=16)
    digests = [hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in range(1000)]
    assert all(seen.add(d) for d in digests)
    assert not any(seen.add(d) for d in digests)
    assert len(seen) == 1000 and seen.nbytes == 2048 * 8
    assert not seen.add_batch(b"".join(digests)).any()


# ---------------------------------------------------------------------------------------------------
# cap_records: against the reference, and the pool of workers against one process


def _records(n: int, seed: int = 0) -> list[dict]:
    return [
        {"id": f"r{i}", "text": text, "lang": "ron_Latn", "meta": {"n": i}}
        for i, text in enumerate(random_texts(n, seed))
    ]


@pytest.mark.parametrize(
    ("max_bytes", "min_chars", "dedup"),
    [(None, 1, True), (None, 5, True), (None, 1, False), (20_000, 1, True), (20_000, 0, False)],
)
def test_cap_records_equals_the_reference(tmp_path, max_bytes, min_chars, dedup):
    records = _records(3000)
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(records))
    expected = reference_cap(records, max_bytes=max_bytes, min_chars=min_chars, dedup=dedup)
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.jsonl"
        stats = cap_records(
            input_path=src,
            output=out,
            max_bytes=max_bytes,
            min_chars=min_chars,
            keep_duplicates=not dedup,
            workers=workers,
            batch_bytes=4000,  # many batches, so the pool of workers really runs
        )
        assert read_jsonl(out.read_bytes()) == expected
        assert stats.records_out == len(expected)
        assert stats.extra["bytes"] == sum(len(r["text"].encode()) for r in expected)
    assert (tmp_path / "out1.jsonl").read_bytes() == (tmp_path / "out2.jsonl").read_bytes()


def test_a_capped_run_lets_the_workers_finish_instead_of_killing_them(tmp_path, monkeypatch):
    """The cap is reached with batches still in the workers: they finish them and end on their own.
    ``Pool.terminate`` could kill one while it held the result queue's lock and hang for ever (it did,
    in `make test` and in 1 of 2 loops of 300 such runs; _CleaningPool.close)."""
    from multiprocessing.pool import Pool

    terminated = []
    real = Pool.terminate
    monkeypatch.setattr(Pool, "terminate", lambda pool: terminated.append(pool) or real(pool))
    records = _records(3000)
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(records))
    stats = cap_records(
        input_path=src, output=tmp_path / "out.jsonl", max_bytes=20_000, workers=2, batch_bytes=4000
    )
    expected = reference_cap(records, max_bytes=20_000, min_chars=1, dedup=True)
    assert read_jsonl((tmp_path / "out.jsonl").read_bytes()) == expected
    assert stats.records_out == len(expected) < len(records)  # the cap stopped it early
    assert terminated == []


def test_a_pool_whose_batch_does_not_finish_in_time_is_terminated(monkeypatch):
    """A batch in flight that never ends (its worker died, or hangs) does not keep close() waiting:
    after CLOSE_WAIT the workers are terminated."""
    import time

    from lrltool.corpus import cap

    monkeypatch.setattr(cap, "CLOSE_WAIT", 0.5)
    pool = cap._CleaningPool(2, CleanOptions(), 4000)
    pool.pending.append((None, pool.pool.apply_async(time.sleep, (60,))))
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 30
    assert not pool.pending and pool.slots is None


def test_pool_and_single_process_agree_on_counts_and_bad_lines(tmp_path):
    records = _records(2000, seed=3)
    lines = jsonl(records).splitlines(keepends=True)
    lines[100] = b"{broken\n"
    lines[400] = b'{"id": "x"}\n'
    src = tmp_path / "in.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    results = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.jsonl.zst"
        stats = cap_records(
            input_path=src,
            output=out,
            max_bytes=15_000,
            skip_bad_lines=True,
            workers=workers,
            batch_bytes=3000,
        )
        results.append((stats.as_dict(), out.read_bytes()))
    (stats1, out1), (stats2, out2) = results
    assert stats1 == stats2
    assert zstandard.ZstdDecompressor().decompressobj().decompress(out1) == (
        zstandard.ZstdDecompressor().decompressobj().decompress(out2)
    )
    assert stats1["dropped"]["bad_line"] == 2
    assert stats1["dropped"]["over_cap"] == 1
    assert stats1["cap_reached"] == "yes"


def test_bad_line_in_a_worker_batch_stops_the_run_and_leaves_no_file(tmp_path):
    lines = jsonl(_records(2000)).splitlines(keepends=True)
    lines[1234] = b'{"id": 1, "text": 5}\n'
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    with pytest.raises(InputError) as err:
        cap_records(input_path=src, output=tmp_path / "out.jsonl.zst", workers=2, batch_bytes=3000)
    assert (
        str(err.value) == f"{src}:1235: record field 'text' is int, expected str; write 'text' as a JSON str"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


# ---------------------------------------------------------------------------------------------------
# The command


def test_cli_cleans_dedups_and_passes_keys_through(cli):
    records = [
        {
            "id": "a",
            "text": "  Ana\u00a0are\tmere.\n",
            "lang": "ron_Latn",
            "meta": {"url": "u"},
            "extra": [1],
        },
        {"id": "b", "text": "Ana are mere."},  # the same text once cleaned
        {"id": "c", "text": "Ș\x00i pe\x07re.", "source": "glotcc"},
        {"id": "d", "text": "sca\u0306un"},  # NFD ă
        {"id": "e", "text": "ok"},
        {"id": "f", "text": " \n "},
    ]
    result = cli(["cap", "--min-chars", "3"], input=jsonl(records))
    assert result.exit_code == 0
    assert read_jsonl(result.stdout_bytes) == [
        {"id": "a", "text": "Ana are mere.", "lang": "ron_Latn", "meta": {"url": "u"}, "extra": [1]},
        {"id": "c", "text": "Și pere.", "source": "glotcc"},
        {"id": "d", "text": "scăun"},
    ]
    assert result.stderr == "cap: 6 in, 3 out; dropped 3 (duplicate 1, empty 1, too_short 1); bytes 28\n"


def test_cli_keep_duplicates(cli):
    records = [{"id": str(i), "text": "la fel"} for i in range(3)]
    result = cli(["cap", "--keep-duplicates", "-q"], input=jsonl(records))
    assert read_jsonl(result.stdout_bytes) == records
    assert result.stderr == ""


def _sized(sizes):
    # Distinct texts of known UTF-8 sizes: a letter, then "ă" (two bytes) and "x" to make up the size.
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [
        {"id": f"s{i}", "text": letters[i] + "ă" * ((n - 1) // 2) + "x" * ((n - 1) % 2)}
        for i, n in enumerate(sizes)
    ]


@pytest.mark.parametrize(
    ("max_bytes", "kept"),
    [("30", 3), ("29", 2), ("10", 1), ("1000", 5)],  # "9" keeps none: refused (see the empty-result test)
)
def test_cli_exact_cap_boundary(cli, tmp_path, max_bytes, kept):
    records = _sized([10, 7, 13, 1, 1])  # running totals 10, 17, 30, 31, 32
    stats_path = tmp_path / "stats.json"
    result = cli(["cap", "--max-bytes", max_bytes, "--stats", stats_path], input=jsonl(records))
    assert result.exit_code == 0
    # Records after the first that does not fit are not kept, even if they would fit.
    assert read_jsonl(result.stdout_bytes) == records[:kept]
    stats = orjson.loads(stats_path.read_bytes())
    assert stats["bytes"] == [0, 10, 17, 30, 31, 32][kept]
    assert stats["records_out"] == kept
    assert stats["cap_reached"] == ("no" if kept == 5 else "yes")
    assert stats["records_in"] == (5 if kept == 5 else kept + 1)
    assert stats["dropped"] == ({} if kept == 5 else {"over_cap": 1})


def test_cli_decimal_and_binary_units_differ(cli):
    records = _sized([600, 400, 24, 1])  # 1000, 1024, 1025
    assert len(read_jsonl(cli(["cap", "--max-bytes", "1k"], input=jsonl(records)).stdout_bytes)) == 2
    assert len(read_jsonl(cli(["cap", "--max-bytes", "1KiB"], input=jsonl(records)).stdout_bytes)) == 3
    assert len(read_jsonl(cli(["cap", "--max-bytes", "1025"], input=jsonl(records)).stdout_bytes)) == 4


def test_cli_zst_round_trip(cli, tmp_path):
    records = _records(500)
    src = tmp_path / "in.jsonl.zst"
    with write_records(src) as out:
        out.write_all(records)
    dst = tmp_path / "out.jsonl.zst"
    result = cli(["cap", src, "-o", dst, "--max-bytes", "5k"])
    assert result.exit_code == 0
    assert dst.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert list(read_records(dst)) == reference_cap(records, max_bytes=5000)


def test_cli_split_writes_the_files_together_and_deterministically(cli, tmp_path):
    records = [{"id": f"doc-{i}", "text": f"text number {i}", "k": i} for i in range(3000)]
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(records))
    spec = "train=0.8,validation=0.1,test=0.1"
    result = cli(
        ["cap", src, "--split", spec, "-o", tmp_path / "a", "--seed", "7", "--stats", tmp_path / "s.json"]
    )
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "test.jsonl.zst",
        "train.jsonl.zst",
        "validation.jsonl.zst",
    ]
    parts = {
        name: list(read_records(tmp_path / "a" / f"{name}.jsonl.zst"))
        for name in ("train", "validation", "test")
    }
    thresholds = split_thresholds(parse_split(spec))
    for index, name in enumerate(("train", "validation", "test")):
        assert parts[name] == [r for r in records if split_index(r["id"], 7, thresholds) == index]
    stats = orjson.loads((tmp_path / "s.json").read_bytes())
    assert stats["splits"] == {name: len(rows) for name, rows in parts.items()}
    assert abs(stats["splits"]["train"] - 2400) < 100
    # The same again, and on a subset: a record's split depends on its id and the seed only.
    cli(["cap", src, "--split", spec, "-o", tmp_path / "b", "--seed", "7"])
    for name in parts:
        assert (tmp_path / "a" / f"{name}.jsonl.zst").read_bytes() == (
            tmp_path / "b" / f"{name}.jsonl.zst"
        ).read_bytes()
    subset = records[::7]
    result = cli(["cap", "--split", spec, "-o", tmp_path / "c", "--seed", "7"], input=jsonl(subset))
    for name, rows in parts.items():
        assert list(read_records(tmp_path / "c" / f"{name}.jsonl.zst")) == [
            r for r in rows if r["k"] % 7 == 0
        ]


def test_cli_cap_on_stdin_drains_the_rest(cli):
    records = _sized([10] * 50)
    result = cli(["cap", "--max-bytes", "25"], input=jsonl(records))
    assert result.exit_code == 0
    assert read_jsonl(result.stdout_bytes) == records[:2]
    assert result.stderr.startswith("cap: 3 in, 2 out; dropped 1 (over_cap 1); bytes 20;")


# ---------------------------------------------------------------------------------------------------
# Bad input: exit status, one line on stderr, no traceback, no file left


def _assert_one_line_error(result, code, text, folder):
    assert result.exit_code == code
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["in.jsonl"]


GOOD = b'{"id": "a", "text": "x"}\n'


@pytest.mark.parametrize(
    ("content", "args", "code", "text"),
    [
        (GOOD + b'{"id": "b", "text": \n', [], 1, "in.jsonl:2: line is not valid JSON"),
        (GOOD + b'{"id": "b"}\n', [], 1, "in.jsonl:2: record has no 'text' key"),
        (b'{"id": "a", "text": ["x"]}\n', [], 1, "in.jsonl:1: record field 'text' is list, expected str"),
        (b'"text"\n', [], 1, "in.jsonl:1: expected a JSON object, found a JSON str"),
        (GOOD + b"\xff\n", [], 1, "in.jsonl:2: line is not valid UTF-8"),
        (b'{"text": "x"}\n', ["--split", "train=1", "-o", "DIR"], 1, "in.jsonl:1: record has no 'id' key"),
        (GOOD, ["--max-bytes", "5X"], 2, "error: cannot read '5X' as a size; give a"),
        (GOOD, ["--max-bytes", "0"], 2, "size '0' is less than one byte"),
        (GOOD, ["--split", "train=0.8,test=0.3", "-o", "DIR"], 2, "sum to 1.1, not 1"),
        (GOOD, ["--split", "train=1"], 2, "--split writes one file per split into a folder; give the folder"),
    ],
)
def test_cli_bad_input(cli, tmp_path, content, args, code, text):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    args = [tmp_path / "out" if a == "DIR" else a for a in args]
    if "-o" not in args and "--split" not in args:
        args += ["-o", tmp_path / "out.jsonl.zst"]
    _assert_one_line_error(cli(["cap", src, *args]), code, text, tmp_path)


def test_cli_missing_input_file(cli, tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b"")
    result = cli(["cap", tmp_path / "nope.jsonl", "-o", tmp_path / "out.jsonl"])
    _assert_one_line_error(result, 1, "nope.jsonl: no such file; check the path", tmp_path)


def test_cli_skip_bad_lines_counts_them(cli):
    data = b'{"id": "a", "text": "x"}\nnot json\n{"id": "b"}\n{"id": "c", "text": "y"}\n'
    result = cli(["cap", "--skip-bad-lines"], input=data)
    assert result.exit_code == 0
    assert read_jsonl(result.stdout_bytes) == [{"id": "a", "text": "x"}, {"id": "c", "text": "y"}]
    assert result.stderr.splitlines() == [
        "warning: skipped: <stdin>:2: line is not valid JSON; expected one JSON object per line",
        "warning: skipped: <stdin>:3: record has no 'text' key; "
        "each line must be a JSON object with a 'text' field",
        "cap: 3 in, 2 out; dropped 2 (bad_line 2); bytes 2",
    ]


# ---------------------------------------------------------------------------------------------------
# The batched reader in streams.py that cap uses: same lines, numbers and messages as RecordReader


def _batched(path, batch_bytes):
    from lrltool.streams import LineBatchReader, not_an_object_error, parse_jsonl_lines

    seen = []
    for first, data in LineBatchReader(path, batch_bytes=batch_bytes):
        for number, value in parse_jsonl_lines(data, first):
            if isinstance(value, InputError):
                seen.append((number, str(value.located(str(path), number))))
            elif not isinstance(value, dict):
                seen.append((number, str(not_an_object_error(value).located(str(path), number))))
            else:
                seen.append((number, value))
    return seen


def _record_reader(path):
    from lrltool.streams import RecordReader

    seen = []

    class Collecting(RecordReader):
        def reject(self, error):
            seen.append((self.line, str(error.located(self.name, self.line))))

    reader = Collecting(path)
    for value in reader:
        seen.append((reader.line, value))
    return seen


MIXED = (
    b'{"id": 1, "text": "unu"}\n'
    b"\n"
    b"   \t \n"
    b'\xef\xbb\xbf{"id": 2}\r\n'  # a BOM, a CRLF line end
    b'\x1e{"id": 3}\n'  # an RFC 7464 record separator
    b"{broken\n"
    b'{"text": "\xff"}\n'
    b"null\n"
    b"[1, 2]\n"
    b'"just a string"\n'
    b'{"id": 4, "text": "'
    + "ă".encode() * 300
    + b'"}\n'
    + '{"id": 5, "text": "fără sfârșit de linie"}'.encode()  # no line end
)


@pytest.mark.parametrize("batch_bytes", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("compress", ["", ".gz", ".zst"])
def test_batched_reader_equals_record_reader(tmp_path, batch_bytes, compress):
    import gzip

    path = tmp_path / f"mixed.jsonl{compress}"
    packer = {"": bytes, ".gz": gzip.compress, ".zst": zstandard.ZstdCompressor().compress}[compress]
    path.write_bytes(packer(MIXED))
    expected = _record_reader(path)
    assert [n for n, _ in expected] == [1, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert expected[3] == (6, f"{path}:6: line is not valid JSON; expected one JSON object per line")
    assert expected[4] == (7, f"{path}:7: line is not valid UTF-8; expected one JSON object per line")
    assert _batched(path, batch_bytes) == expected


def test_batches_end_at_line_ends_and_number_their_lines(tmp_path):
    from lrltool.streams import LineBatchReader

    path = tmp_path / "lines.txt"
    data = b"".join(b"x" * (i % 13) + b"\n" for i in range(500)) + b"tail"
    path.write_bytes(data)
    batches = list(LineBatchReader(path, batch_bytes=100))
    assert b"".join(b for _, b in batches) == data
    assert all(b.endswith(b"\n") for _, b in batches[:-1])
    line = 1
    for first, batch in batches:
        assert first == line
        line += batch.count(b"\n")
    assert line == 501


def test_cli_output_folder_needs_split(cli, tmp_path):
    (tmp_path / "dir").mkdir()
    result = cli(["cap", "-o", tmp_path / "dir"], input=GOOD)
    assert result.exit_code == 2
    folder = tmp_path / "dir"
    assert (
        result.stderr
        == f"error: -o {folder} is a folder; name an output file, or give --split to fill a folder\n"
    )
    assert list((tmp_path / "dir").iterdir()) == []


def test_pool_results_too_big_for_shared_memory_and_without_fork(tmp_path, monkeypatch):
    import multiprocessing

    records = _records(600)
    records[300]["text"] = "mare " * 250_000  # 1.25 MB: its batch's lines do not fit a shared-memory slot
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(records))
    expected = reference_cap(records)
    out = tmp_path / "out.jsonl"
    cap_records(input_path=src, output=out, workers=2, batch_bytes=4000)
    assert read_jsonl(out.read_bytes()) == expected
    # Where fork is missing, the workers are spawned and everything comes back through the pipe.
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    cap_records(input_path=src, output=out, workers=2, batch_bytes=4000)
    assert read_jsonl(out.read_bytes()) == expected


@pytest.mark.parametrize(
    ("content", "options", "text"),
    [
        (b"", [], "in.jsonl: no records in the input, so no records to write; check the input"),
        (
            b'{"id": "a", "text": " "}\n{"id": "b", "text": "ab"}\n',
            ["--min-chars", "3"],
            "in.jsonl: no records to write: 2 records read, none kept (dropped: empty 1, too_short 1)",
        ),
        (b'{"id": "a", "text": "Ana are mere."}\n', ["--max-bytes", "5"], "(dropped: over_cap 1)"),
        (b'{"id": "a", "text": " "}\n', ["--split", "train=0.5,test=0.5"], "(dropped: empty 1)"),
    ],
)
def test_cli_empty_input_or_result_is_refused_like_every_command(cli, tmp_path, content, options, text):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / ("split" if "--split" in options else "out.jsonl.zst")
    result = cli(["cap", src, "-o", out, *options])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and text in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


# --- plain-text input ------------------------------------------------------------------------------

TEXT_LINES = [
    "Ana are mere.",
    "",
    "Bună  ziua\x01 lume.",
    "   ",
    "Ana are mere.",
    "Marea Neagră e la est.",
    "x",
]


def _jsonl_of_lines(lines: list[str], **extra) -> bytes:
    """The JSONL records that a plain-text input stands for: one a non-blank line, id = its line number."""
    records = [{"id": str(n), "text": t, **extra} for n, t in enumerate(lines, 1) if t.strip()]
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_cli_cap_reads_text_files_and_stdin_as_the_equivalent_jsonl(cli, tmp_path):
    txt = tmp_path / "corpus.txt"
    txt.write_text("\n".join(TEXT_LINES) + "\n", encoding="utf-8")
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_bytes(_jsonl_of_lines(TEXT_LINES, lang="ron_Latn"))
    expected = cli(["cap", str(jsonl), "--min-chars", "2", "-q"])
    assert expected.exit_code == 0, expected.stderr
    assert [r["id"] for r in map(orjson.loads, expected.stdout.splitlines())] == ["1", "3", "6"]
    from_file = cli(["cap", str(txt), "--min-chars", "2", "--lang", "ro", "-q"])
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.stdout == expected.stdout
    from_stdin = cli(
        ["cap", "--input-format", "text", "--min-chars", "2", "-l", "Romanian", "-q"], input=txt.read_text()
    )
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert from_stdin.stdout == expected.stdout
    # the same split files, by the same ids
    for name, source in (("a", txt), ("b", jsonl)):
        args = ["cap", str(source), "--split", "train=0.5,validation=0.5", "-o", str(tmp_path / name), "-q"]
        assert cli([*args, "--lang", "ron"] if name == "a" else args).exit_code == 0
    for split in ("train", "validation"):
        a, b = (list(read_records(tmp_path / n / f"{split}.jsonl.zst")) for n in "ab")
        assert a == b


@pytest.mark.parametrize("workers", [1, 2])
def test_cap_text_batches_equal_the_record_reader(tmp_path, workers):
    path = tmp_path / "big.txt"
    rng = random.Random(3)
    lines = [
        " ".join(rng.choice(["ana", "are", "mere", "pere", "", "\t"]) for _ in range(5)) for _ in range(400)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cap_records(input_path=path, output=out, workers=workers, batch_bytes=256, keep_duplicates=True)
    expected = [
        {"id": r["id"], "text": reference_clean(r["text"])}
        for r in read_records(path)  # RecordReader's plain-text records (train-adapter's reader)
        if reference_clean(r["text"])
    ]
    assert list(read_records(out)) == expected and len(expected) > 300


def test_cli_cap_text_bad_utf8_line_is_one_error_naming_file_and_line(cli, tmp_path):
    txt = tmp_path / "bad.txt"
    txt.write_bytes(b"good line\n\nanother\n\xff\xfe broken\nlast\n")
    result = cli(["cap", str(txt), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {txt}:4: line is not valid UTF-8; save the text file as UTF-8"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "out.jsonl").exists()
    result = cli(["cap", "--input-format", "text"], input=txt.read_bytes())
    assert (
        result.exit_code == 1
        and "<stdin>:4: line is not valid UTF-8" in result.stderr
        and result.stdout == ""
    )
    result = cli(["cap", str(txt), "--skip-bad-lines", "-q"])
    assert result.exit_code == 0 and [r["id"] for r in map(orjson.loads, result.stdout.splitlines())] == [
        "1",
        "3",
        "5",
    ]
    result = cli(["cap", "--input-format", "csv"], input="x\n")
    assert result.exit_code == 2 and "unknown --input-format 'csv'" in result.stderr
