"""Should the tokenized-data cache of train-adapter (lrltool/lm/data.py ``load_or_tokenize``: numpy
memory maps) be a 🤗 datasets Arrow dataset (``load_dataset("json")`` + fingerprinted ``Dataset.map``
tokenize + group_texts, as run_mlm.py does)? Both tokenize the same texts with the same fast tokenizer
into the same packed 512-token blocks; measured: the first run (read, tokenize, pack, store), a rerun that
finds the cache, and the cache's size on disk. Each path runs in a fresh interpreter (its own imports)."""

from __future__ import annotations

import json
import shutil

from common import WORK, Row, run_python

GOAL = ">= 1.0x"  # datasets is adopted only if at least as fast and no larger


def _corpus(n: int):
    from lrltool.tiny import corpus_lines

    lines = corpus_lines()
    path = WORK / "datacache" / f"texts-{n}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps({"id": str(i), "text": f"{lines[i % len(lines)]} {i}"}, ensure_ascii=False) + "\n"
            )
    return path


OURS = """
import sys
from pathlib import Path
from lrltool import streams
from lrltool.lm import data
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = [r["text"] for r in streams.read_records(sys.argv[2])]
spec = data.TokenizeSpec(objective="mlm", max_len=512, packing=True, whole_word=False)
blocks, hit, folder = data.load_or_tokenize(texts, data.hash_texts(texts), tok, spec, Path(sys.argv[3]))
blocks.ids[blocks.starts[-2]:blocks.starts[-1]].sum()  # touch the last block
print(len(blocks), blocks.tokens, hit)
"""

THEIRS = """
import sys
from itertools import chain
from datasets import load_dataset
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
raw = load_dataset("json", data_files=sys.argv[2], split="train", cache_dir=sys.argv[3])
tokenized = raw.map(lambda b: tok(b["text"], return_special_tokens_mask=False), batched=True,
                    remove_columns=raw.column_names)
def group(b):
    ids = list(chain(*b["input_ids"]))
    total = len(ids) // 512 * 512
    return {"input_ids": [ids[i:i + 512] for i in range(0, total, 512)]}
blocks = tokenized.map(group, batched=True, remove_columns=tokenized.column_names)
sum(blocks[len(blocks) - 1]["input_ids"])
print(len(blocks))
"""


def _size(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(quick: bool) -> list[Row]:
    from lrltool.tiny import build_tiny

    n = 20_000 if quick else 200_000
    corpus = _corpus(n)
    model = WORK / "datacache" / "tiny-xlmr"
    if not model.is_dir():
        build_tiny("xlmr", model, max_length=512)
    ours_dir, theirs_dir = WORK / "datacache" / "ours", WORK / "datacache" / "theirs"
    for folder in (ours_dir, theirs_dir):
        shutil.rmtree(folder, ignore_errors=True)
    env = {"HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

    def script(code: str, cache) -> str:
        for k, value in enumerate((model, corpus, cache), 1):
            code = code.replace(f"sys.argv[{k}]", repr(str(value)))
        return code

    ours_cold = run_python(script(OURS, ours_dir), env=env)
    ours_warm = run_python(script(OURS, ours_dir), env=env)
    theirs_cold = run_python(script(THEIRS, theirs_dir), env=env)
    theirs_warm = run_python(script(THEIRS, theirs_dir), env=env)
    ours_size, theirs_size = _size(ours_dir), _size(theirs_dir)
    details = {"texts": n, "ours_bytes": ours_size, "datasets_bytes": theirs_size}
    rows = []
    for measure, ours, base in (
        ("first run, s (read, tokenize, pack, store)", ours_cold.seconds, theirs_cold.seconds),
        ("rerun with the cache, s", ours_warm.seconds, theirs_warm.seconds),
        ("cache size on disk, MB", ours_size / 2**20, theirs_size / 2**20),
    ):
        ratio = base / ours if ours else 0.0
        row = Row(
            "datacache", measure, round(ours, 3), round(base, 3), round(ratio, 2), GOAL, ratio >= 1.0, details
        )
        rows.append(row)
    return rows
