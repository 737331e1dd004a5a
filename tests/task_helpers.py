"""Small task datasets and language-adapter runs for the finetune / eval tests (no downloads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lrltool.downstream.evaluate import evaluate_task_run
from lrltool.downstream.prompting import evaluate_prompt
from lrltool.tasks import TASKS
from lrltool.tiny import corpus_lines

ENTITY_TYPES = ("PER", "ORG", "LOC")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


# One cue word per label opens each text, so that a few training steps of a tiny model learn something
# and predictions are not all one label (tests compare metrics on varied predictions).
CUES = ("știință", "călătorie", "politică", "sport", "sănătate", "divertisment", "geografie")


def classification_records(task: str, lines: list[str], offset: int) -> list[dict]:
    labels = TASKS[task].labels
    records = []
    for i, text in enumerate(lines):
        k = (offset + i) % len(labels)
        text = f"{CUES[k]} {CUES[k]} {text}"
        records.append({"id": f"{offset + i}", "text": text, "label": labels[k], "lang": "ron_Latn"})
    return records


def ner_records(lines: list[str], offset: int, max_words: int = 14) -> list[dict]:
    """Capitalised words become entities (type by word length), runs of them one entity: valid BIO."""
    records = []
    for i, text in enumerate(lines):
        words = text.split()[:max_words]
        tags, previous = [], None
        for word in words:
            if word[:1].isupper():
                kind = previous or ENTITY_TYPES[len(word) % 3]
                tags.append(("I-" if previous else "B-") + kind)
                previous = kind
            else:
                tags.append("O")
                previous = None
        records.append({"id": f"s{offset + i}", "tokens": words, "tags": tags, "lang": "ron_Latn"})
    return records


def make_task_data(
    folder: Path, task: str, *, n_train: int = 32, n_validation: int = 12, n_test: int = 12
) -> Path:
    """DIR/{train,validation,test}.jsonl in the layout `fetch` writes."""
    lines = [line for line in corpus_lines() if len(line.split()) >= 4]
    bounds = {
        "train": (0, n_train),
        "validation": (n_train, n_train + n_validation),
        "test": (n_train + n_validation, n_train + n_validation + n_test),
    }
    for split, (a, b) in bounds.items():
        part = lines[a:b]
        records = ner_records(part, a) if task == "ner" else classification_records(task, part, a)
        write_jsonl(folder / f"{split}.jsonl", records)
    return folder


def make_lang_run(
    model_dir: Path,
    out: Path,
    *,
    method: str = "seq_bn",
    source: str = "glotcc",
    lang: str = "ron_Latn",
    seed: int = 0,
) -> Path:
    """A train-adapter-like run folder: adapter/ (random, visibly non-identity weights) + training.json."""
    import torch

    from lrltool import models

    source_model = models.resolve_model(str(model_dir))
    net = models.load_model(source_model)
    models.add_adapter(net, lang, method)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    models.save_adapter(net, lang, out / "adapter")
    info = {
        "kind": "language adapter",
        "method": method,
        "model": str(model_dir),
        "model_revision": None,
        "objective": source_model.objective,
        "source": source,
        "lang": lang,
        "finished": True,
    }
    (out / "training.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def make_full_run(model_dir: Path, out: Path, *, source: str = "glotcc", lang: str = "ron_Latn") -> Path:
    """A `train-adapter --method full`-like run: model/ (the base model's files) + training.json."""
    shutil.copytree(model_dir, out / "model")
    info = {
        "kind": "continued pre-training",
        "method": "full",
        "model": str(model_dir),
        "model_revision": None,
        "objective": "mlm",
        "source": source,
        "lang": lang,
        "finished": True,
    }
    (out / "training.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def evaluate_run(**options) -> list[dict]:
    """`evaluate_task_run`'s metric records as the JSON objects `eval` writes."""
    return [record.to_json() for record in evaluate_task_run(**options)]


def prompt_records(**options) -> list[dict]:
    """`evaluate_prompt`'s metric records as the JSON objects `eval --prompt` writes."""
    return [record.to_json() for record in evaluate_prompt(**options)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
