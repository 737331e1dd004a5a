"""Publishing a train-adapter run: the AdapterHub model card and ``lrltool push RUN REPO``.

The card (``RUN/adapter/README.md``, written when the run finishes and again by ``push``) is what the
Hugging Face hub and AdapterHub read: YAML front matter with ``library_name: adapter-transformers``, the
tags ``adapter-transformers``, the base model's type and the method, ``base_model``, ``datasets`` (the
adaptation data on the hub, where it is there), ``language`` (ISO 639-1 where there is one, else 639-3)
and ``license``; then how to load the adapter with plain ``adapters`` code, the training settings, the data
hash, and the pseudo-perplexity where ``eval`` measured it (``push --results``).

``push`` uploads the adapter folder (or model/ of a full run) and training.json with huggingface_hub's
``HfApi.upload_folder`` to a private repository unless ``--public``; ``--dry-run`` lists the files and
uploads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrltool import runs
from lrltool.errors import InputError, RunError
from lrltool.records import METRICS, MetricRecord
from lrltool.streams import atomic_output, read_records

#: The adaptation data of each source on the Hugging Face hub (ConceptNet is not a hub dataset).
HUB_DATASETS = {"glotcc": "cis-lmu/GlotCC-V1", "flores": "openlanguagedata/flores_plus"}
SOURCE_TITLES = {"glotcc": "GlotCC-V1 web text", "conceptnet": "ConceptNet 5.7 triples, verbalized"}
PPPL_METRICS = ("pppl_mean", "pppl", "pppl_word", "ppl_mean", "ppl", "ppl_word")
DEFAULT_LICENSE = "apache-2.0"


@dataclass
class Measured:
    """A perplexity of the adapter and, where there is one on the same data, of the base model."""

    metric: str
    value: float
    base: float | None
    n: int
    data_hash: str | None


def _front_matter(info: runs.RunInfo, license_: str) -> list[str]:
    full = info.method == "full"
    tags = ["adapter-transformers"] if not full else ["transformers"]
    tags += [t for t in (info.model_type, info.method, "language-adapter" if not full else None) if t]
    lines = ["---", f"library_name: {'transformers' if full else 'adapter-transformers'}", "tags:"]
    lines += [f"- {tag}" for tag in dict.fromkeys(tags)]
    if info.model and not Path(info.model).exists():  # a hub id, not a local folder
        lines.append(f"base_model: {info.model}")
    dataset = HUB_DATASETS.get(info.source or "")
    if dataset:
        lines += ["datasets:", f"- {dataset}"]
    language = runs.language_tag(info.lang)
    if language:
        lines += ["language:", f"- {language}"]
    lines.append(f"license: {license_}")
    return [*lines, "---", ""]


def adapterhub_card(
    info: runs.RunInfo, *, measured: Sequence[Measured] = (), license_: str = DEFAULT_LICENSE
) -> str:
    """The model card of a train-adapter run's adapter/ (or model/) folder, as the hub reads it."""
    name = info.get("adapter_name") or "adapter"
    objective = str(info.get("objective") or "mlm").upper()
    source = SOURCE_TITLES.get(info.source or "", info.source or "unknown data")
    lines = _front_matter(info, license_)
    lines += [
        f"# {'Language adapter' if info.method != 'full' else 'Continued pre-training'} `{name}`"
        f" for {info.model}",
        "",
        f"A `{info.method}` {'adapter' if info.method != 'full' else 'model'} of `{info.model}` for"
        f" {info.lang or 'an unnamed language'}, trained with {objective} on {source}, made with lrltool"
        " (after Gurgurov et al., 2025, *Small Models, Big Impact*).",
        "",
        "## Usage",
        "",
        "```python",
    ]
    if info.method == "full":
        lines += [
            "from transformers import AutoModelForMaskedLM",
            "model = AutoModelForMaskedLM.from_pretrained(REPO)",
        ]
    else:
        lines += [
            "import adapters",
            "from transformers import AutoModelForMaskedLM  # AutoModelForCausalLM for decoders",
            f"model = AutoModelForMaskedLM.from_pretrained({info.model!r})",
            "adapters.init(model)",
            "name = model.load_adapter(REPO, source='hf', set_active=True)  # or a local folder",
        ]
    lines += ["```", "", "## Training", ""]
    data = info.data or {}
    lines += [
        f"- data: {data.get('records', 0):,} records, {data.get('tokens', 0):,} tokens;"
        f" sha256 of the texts `{data.get('hash', '?')}`",
        f"- {info.steps:,} steps, best validation loss {info.get('best_eval_loss')} at step"
        f" {info.best_step} (the weights here); {info.trainable_parameters:,} trainable parameters;"
        f" {info.seconds:,.0f} s on {info.device or '?'}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in (info.versions or {}).items())}",
        "",
        "| setting | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in (info.settings or {}).items()),
        "",
        "## Evaluation",
        "",
    ]
    if measured:
        lines += ["| metric | this adapter | base model | test sentences |", "| --- | --- | --- | --- |"]
        for m in measured:
            base = f"{m.base:.2f}" if m.base is not None else "not measured"
            lines.append(f"| {METRICS[m.metric].title} | {m.value:.2f} | {base} | {m.n:,} |")
    else:
        lines.append(
            "Not measured yet: `lrltool eval --task mlm --adapter RUN` on FLORES-200, then `push --results`."
        )
    lines += ["", f"Command: `{info.command or ''}`", ""]
    return "\n".join(lines)


def write_card(folder: Path, info: runs.RunInfo, **card: Any) -> None:
    """Write the card (:func:`adapterhub_card`) as ``folder``/README.md, atomically."""
    with atomic_output(folder / "README.md") as stream:
        stream.write(adapterhub_card(info, **card).encode("utf-8"))


def measured_perplexity(run: Path, info: runs.RunInfo, results: Sequence[str]) -> list[Measured]:
    """The run's perplexity records in the ``results`` files (those whose adapter is this run), each with
    the base model's on the same data where the files hold it."""
    own, base = {}, {}
    targets = {run.resolve(), (run / "adapter").resolve(), (run / "model").resolve()}
    for path in results:
        reader = read_records(path)
        for record in reader:
            try:
                metric = MetricRecord.from_json(record)
            except InputError as exc:
                reader.reject(exc)
                continue
            if metric.metric not in PPPL_METRICS or metric.lang != info.lang:
                continue
            key = (metric.metric, metric.details.get("data_hash") or metric.settings.get("data_hash"))
            if metric.adapter and Path(metric.adapter).resolve() in targets:
                own[key] = metric
            elif metric.method == "base" and metric.model == info.model:
                base[key] = metric
    found = []
    for key, metric in sorted(own.items(), key=lambda kv: PPPL_METRICS.index(kv[0][0])):
        other = base.get(key)
        found.append(Measured(metric.metric, metric.value, other.value if other else None, metric.n, key[1]))
    return found


def push(
    *,
    run: str | Path,
    repo: str,
    public: bool = False,
    dry_run: bool = False,
    results: Sequence[str] = (),
    license_: str = DEFAULT_LICENSE,
    token: str | None = None,
) -> list[str]:
    """Upload the finished train-adapter run ``run`` to the hub repository ``repo``; return the uploaded
    paths (as in the repository). Rewrites the card (RUN/adapter/README.md) first, with the perplexity
    that ``results`` hold for this run (not with ``dry_run``). Refuses (before anything is written or
    sent) a folder that holds no finished train-adapter run and a repository id that is not owner/name.
    """
    path = Path(run)
    info = runs.RunInfo.find(path)
    if info is None or info.kind not in ("language adapter", "continued pre-training"):
        raise RunError(
            "not a train-adapter run (no training.json of a language adapter)",
            hint="give the run folder that train-adapter wrote",
            path=str(path),
        )
    path = path.parent if path.name in ("adapter", "model") else path
    if not info.finished:
        raise RunError("the run has not finished", hint="finish it with --resume first", path=str(path))
    runs.check_repo_id(repo)
    folder = path / ("model" if info.method == "full" else "adapter")
    card = adapterhub_card(info, measured=measured_perplexity(path, info, results), license_=license_)
    return runs.push_folder(
        folder,
        repo,
        card=card,
        extra={"training.json": path / runs.TRAINING_JSON},
        message=f"lrltool push: {info.method} adapter for {info.lang}",
        public=public,
        token=token,
        dry_run=dry_run,
    )
