"""Publishing a finetune run: its hub model card and ``lrltool push RUN REPO`` (one seed's run).

The card (written into the exported folder, ``RUN/adapter/README.md`` or ``RUN/model/README.md``, when
``push`` uploads) is what the Hugging Face hub reads: YAML front matter with ``library_name``
(``adapter-transformers`` for a task adapter, ``transformers`` for a fully fine-tuned model), tags, the
``pipeline_tag``, ``base_model`` (a hub id), ``datasets`` (the task's data on the hub), ``language``,
``license``, ``metrics`` and a ``model-index`` with the validation score training.json records and the
test scores of ``push --results`` (eval's records of this run); then the run's own card (task, labels,
language adapters, data, settings) and how to load it from the hub.

A ``finetune --seeds`` root holds one run per seed: push one, ``RUN/seed-N``; the root is refused with the
seeds there are. Language adapters a task adapter was stacked on are other runs (push them with ``push``
of their train-adapter run); the card names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrltool import runs
from lrltool.downstream.card import task_model_card
from lrltool.downstream.model import FUSION_DIR
from lrltool.errors import InputError, RunError, UsageError
from lrltool.records import METRICS, MetricRecord
from lrltool.sources import sib200, wikiann
from lrltool.streams import read_records
from lrltool.tasks import TRAINABLE_TASKS, get_task

KIND = "finetune"
#: The task's data on the hub, by fetch source (the sentiment sets are several, none canonical).
TASK_DATASETS = {"sib200": sib200.REPO, "wikiann": wikiann.REPO}
PIPELINE_TAGS = {"classification": "text-classification", "tagging": "token-classification"}
#: A metric's type in the hub's model-index (https://github.com/huggingface/hub-docs, modelcard.md).
HUB_METRIC_TYPES = {"macro_f1": "f1", "f1": "seqeval", "accuracy": "accuracy"}
DEFAULT_LICENSE = "apache-2.0"


def seed_runs(path: Path) -> list[Path]:
    """The seed-N finetune runs of a ``finetune --seeds`` root (none for any other folder)."""
    if (path / runs.TRAINING_JSON).is_file():
        return []
    found = [p for p in path.glob("seed-*") if (p / runs.TRAINING_JSON).is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0)


def is_task_run(path: Path) -> bool:
    """Whether ``path`` is a finetune run (or its adapter/model folder) or a finetune --seeds root."""
    info = runs.RunInfo.find(path)
    return (info is not None and info.kind == KIND) or bool(seed_runs(path))


def test_results(run: Path, results: Sequence[str]) -> list[MetricRecord]:
    """eval's per-seed records of this run (details.run is the run folder) in the ``results`` files, one
    per metric (the last one read wins)."""
    found: dict[str, MetricRecord] = {}
    target = run.resolve()
    for path in results:
        reader = read_records(path)
        for record in reader:
            try:
                metric = MetricRecord.from_json(record)
            except InputError as exc:
                reader.reject(exc)
                continue
            where = (metric.details or {}).get("run")
            if metric.aggregate is None and where and Path(where).resolve() == target:
                found[metric.metric] = metric
    return list(found.values())


def _metric_entry(name: str, value: float) -> dict[str, Any]:
    return {
        "type": HUB_METRIC_TYPES.get(name, name),
        "value": round(float(value), 4),
        "name": METRICS[name].title,
    }


def hub_card(
    info: runs.RunInfo, *, test: Sequence[MetricRecord] = (), license_: str = DEFAULT_LICENSE, repo: str = ""
) -> str:
    """The hub model card of a finetune run (its training.json ``info``) and its test scores ``test``."""
    data = info.to_json()
    spec = get_task(data["task"], among=TRAINABLE_TASKS)
    full = data.get("task_method") == "full"
    pipeline = PIPELINE_TAGS[spec.kind]
    base_model = info.model if info.model and not Path(info.model).exists() else None  # a hub id only
    dataset = TASK_DATASETS.get(spec.source)
    results = []
    by_loss = (info.settings or {}).get("select_by") == "loss"
    if data.get("best_score") is not None and not by_loss:
        results.append(("validation", [_metric_entry(data["metric"], data["best_score"])]))
    if test:
        results.append(("test", [_metric_entry(m.metric, m.value) for m in test if m.metric in METRICS]))
    task_block = {"type": pipeline, "name": spec.description}
    meta = {
        "library_name": "transformers" if full else "adapter-transformers",
        "pipeline_tag": pipeline,
        "tags": list(
            dict.fromkeys(
                t
                for t in (
                    "transformers" if full else "adapter-transformers",
                    info.model_type,
                    spec.name,
                    spec.source,
                    None if full else "task-adapter",
                    data.get("lang_method") if data.get("lang_method") not in (None, "base") else None,
                    "lrltool",
                )
                if t
            )
        ),
        "base_model": base_model,
        "datasets": [dataset] if dataset else [],
        "language": [tag] if (tag := runs.language_tag(info.lang)) else [],
        "license": license_,
        "metrics": list(dict.fromkeys(e["type"] for _, entries in results for e in entries)),
        "model-index": [
            {
                "name": repo.split("/")[-1] or f"{spec.name}-{info.lang}",
                "results": [
                    {
                        "task": task_block,
                        "dataset": {"type": dataset or spec.source, "name": spec.source, "split": split}
                        | ({"config": info.lang} if info.lang and spec.source == "sib200" else {}),
                        "metrics": entries,
                    }
                    for split, entries in results
                ],
            }
        ]
        if results
        else [],
    }
    body = task_model_card(data).render()
    return runs.front_matter(meta) + "\n" + body + "\n".join(_hub_sections(data, spec, test, full)) + "\n"


def _hub_sections(data: dict[str, Any], spec: Any, test: Sequence[MetricRecord], full: bool) -> list[str]:
    """The card's evaluation and loading-from-the-hub sections."""
    lines = ["", "## Evaluation", ""]
    if test:
        lines += ["| metric | test | examples |", "| --- | --- | --- |"]
        lines += [
            f"| {METRICS[m.metric].title} | {m.value:.4f} | {m.n:,} |" for m in test if m.metric in METRICS
        ]
    else:
        lines.append(
            f"Test scores not given: `lrltool eval --task {spec.name} --run RUN >> results.jsonl`, then"
            " `lrltool push RUN REPO --results results.jsonl`."
        )
    lines += ["", "## From the hub", "", "```python"]
    if full:
        head = (
            "AutoModelForSequenceClassification"
            if spec.kind == "classification"
            else "AutoModelForTokenClassification"
        )
        lines += [f"from transformers import {head}", f"model = {head}.from_pretrained(REPO)"]
    else:
        lines += [
            "# after loading the base model and its language adapter(s) as under 'Use' above:",
            f"model.load_adapter(REPO, source='hf', load_as={spec.name!r}, use_safetensors=True)",
        ]
    lines.append("```")
    langs = data.get("lang_adapters") or []
    if langs and not full:
        lines += [
            "",
            "The language adapter(s) this task adapter was stacked on are not in this repository: push each"
            " with `lrltool push LANG_RUN REPO`. "
            + "; ".join(f"`{x['path']}` ({x['method']})" for x in langs),
        ]
    return lines


def _target(run: Path) -> tuple[Path, runs.RunInfo]:
    """(run folder, training.json) of the finetune run to push; refuses a --seeds root and other folders."""
    seeds = seed_runs(run)
    if seeds:
        names = ", ".join(p.name for p in seeds)
        raise UsageError(
            f"{run} holds the finetune runs of several seeds ({names}): push one seed's run",
            hint=f"lrltool push {seeds[0]} REPO",
        )
    info = runs.RunInfo.find(run)
    if info is None or info.kind != KIND:
        raise RunError("not a finetune run (no training.json of a finetune run)", path=str(run))
    path = run.parent if run.name in ("adapter", "model") else run
    if not info.finished:
        raise RunError("the run has not finished", hint="finish it with --resume first", path=str(path))
    return path, info


def push_task_run(
    *,
    run: str | Path,
    repo: str,
    public: bool = False,
    dry_run: bool = False,
    results: Sequence[str] = (),
    license_: str = DEFAULT_LICENSE,
    token: str | None = None,
) -> list[str]:
    """Upload the finished finetune run ``run`` (one seed) to the hub repository ``repo``; return the
    uploaded paths as in the repository: the exported folder's files (task adapter + head, or the full
    model) with the card as README.md, training.json, and fusion/ of a fusion run. Writes the card into
    the exported folder (not with ``dry_run``). Refuses, before anything is written or sent, a --seeds
    root (naming its seeds), an unfinished run, anything else, and a repository id that is not owner/name.
    """
    path, info = _target(Path(run))
    runs.check_repo_id(repo)
    folder = path / ("model" if info.get("task_method") == "full" else "adapter")
    fusion = path / FUSION_DIR
    card = hub_card(info, test=test_results(path, results), license_=license_, repo=repo)
    extra = {"training.json": path / runs.TRAINING_JSON}
    if fusion.is_dir():
        extra["fusion"] = fusion
    what = "full model" if info.get("task_method") == "full" else "task adapter"
    return runs.push_folder(
        folder,
        repo,
        card=card,
        extra=extra,
        message=f"lrltool push: {info.get('task')} {what} for {info.lang}",
        public=public,
        token=token,
        dry_run=dry_run,
    )
