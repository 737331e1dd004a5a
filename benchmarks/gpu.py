"""GPU figures in one command (``make bench-gpu``): base-size models, random weights, offline.

For each model shape (XLM-R base: 250,002 vocabulary, 768 hidden, 12 layers; mBERT base: 119,547, 768,
12; a LLaMA-shaped ~1.2B decoder: 32,000, 2048 hidden, 16 layers, 8192 FFN), built with random weights
and a tokenizer trained on the bundled text (``lrltool.tiny``), it runs lrltool's own code on the GPU:

- ``train-adapter`` (seq_bn; MLM for the encoders, CLM for the decoder), batch 16 x 512, packed blocks,
  in fp32 and with bf16 autocast: real tokens per second (training.json's ``steady_tokens_per_second``:
  from the end of the first step to the end of the last, so CUDA start-up and the first step's
  allocations are left out; the whole loop's ``tokens_per_second`` is recorded beside it);
- ``finetune --task tc`` (a seq_bn task adapter + head on the bundled SIB-200 sample, batch 32, fp32,
  lrltool's default precision for finetune): examples per second;
- pseudo-perplexity (``eval --task mlm``'s scorer, encoders only) of 1,012 sentences in fp32 and bf16:
  sentences per second;

each with its peak GPU memory (``torch.cuda.max_memory_allocated``) and its model FLOP utilisation: the
model FLOP/s achieved over the device's dense bf16 peak (``PEAK_BF16_TFLOPS``, by device name).

FLOPs counted (attention's own score/value products are not counted; embedding lookups are not):
N_body = every parameter but the input embeddings and the output embedding (LM head decoder) matrix,
N_head = vocabulary x hidden. Training: 6 x (N_body + N_head x h) per real token, h = the share of
positions where the LM head runs (0.15 for MLM, lrltool computes it only at masked positions; 1 for CLM).
For adapter training this is the conventional model-FLOP count, as if every weight were trained (frozen
weights need no weight gradients, so about 4 x N is done): the ratio is comparable across methods and
with published MFU figures. Finetuning: 6 x N_body per real token. PPPL: 2 x N_body per token of each
masked copy (a sentence of T tokens with S scored is S copies of T tokens) + 2 x N_head per copy.

A measurement that fails (an out-of-memory shape, a bug met only on a GPU) is listed under ``"errors"``
with its one-line error (its traceback goes to stderr), and the next measurement runs; the script then
exits 1. The results file is rewritten whole after every figure and every failure, with ``"complete":
false`` until every measurement was tried: a run cut short (a lease's time limit, a killed process)
keeps what it measured. It also records the device, the date and the versions of torch, CUDA,
transformers, adapters, accelerate and tokenizers.

Without CUDA it says so in one line and exits 0. ``--dry-run`` runs the whole script on tiny shapes on
the CPU (what the tests run); its figures mean nothing and go to benchmarks/work/, never to
gpu-results.json.

    python benchmarks/gpu.py [--dry-run] [--only xlmr-base mbert-base llama-1b] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RESULTS = HERE / "gpu-results.json"
DRY_RESULTS = HERE / "work" / "gpu-results-dry-run.json"

#: Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name();
#: the first match wins, so the specific names come first. From NVIDIA's datasheets (their tables give
#: the 2:4-sparsity figure, twice these): H100 SXM 1,979 -> 989.4, H100 PCIe 1,513 -> 756, H100 NVL 1,671
#: -> 835; H200 (SXM) 1,979 -> 989.4, H200 NVL 1,671 -> 835; GH200 1,979 -> 989.4; A100 (SXM and PCIe)
#: 624 -> 312; L40S 733 -> 366 (its datasheet prints 362.05 dense); L40 362.1 -> 181; L4 242 -> 121;
#: A10 250 -> 125.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.4),
    ("H100", 989.4),
    ("H200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.05),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
)


@dataclass(frozen=True)
class Shape:
    """A model shape to build with random weights (``lrltool.tiny.build_tiny`` arguments)."""

    arch: str
    model_vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_length: int
    vocab_size: int = 8000  # the tokenizer's pieces (trained on the bundled text)


SHAPES = {
    "xlmr-base": Shape("xlmr", 250_002, 768, 12, 12, 3072, 512),
    "mbert-base": Shape("bert", 119_547, 768, 12, 12, 3072, 512),
    "llama-1b": Shape("llama", 32_000, 2048, 16, 32, 8192, 2048),
}
DRY_SHAPES = {
    "xlmr-base": Shape("xlmr", 3000, 32, 2, 2, 64, 128, vocab_size=1000),
    "mbert-base": Shape("bert", 3000, 32, 2, 2, 64, 128, vocab_size=1000),
    "llama-1b": Shape("llama", 3000, 32, 2, 2, 64, 128, vocab_size=1000),
}


@dataclass(frozen=True)
class Plan:
    """How much each measurement runs."""

    train_steps: int
    train_batch: int
    train_length: int
    finetune_steps: int
    pppl_sentences: int
    device: str
    precisions: tuple[str, ...]  # float32, bfloat16


REAL = Plan(30, 16, 512, 30, 1012, "cuda", ("float32", "bfloat16"))
DRY = Plan(2, 4, 64, 2, 8, "cpu", ("float32",))


@dataclass
class Figure:
    """One measured figure."""

    model: str
    measure: str  # train-adapter, finetune, pppl
    dtype: str
    value: float
    unit: str
    seconds: float  # wall time of the measurement (loading included)
    peak_memory_gb: float | None
    flops_per_second: float | None
    mfu: float | None
    details: dict[str, Any] = field(default_factory=dict)


def peak_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak (TFLOP/s) from ``PEAK_BF16_TFLOPS``; None for a device not listed."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def mfu(flops_per_second: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak (TFLOP/s)."""
    return None if peak is None else flops_per_second / (peak * 1e12)


def parameter_counts(model: Any) -> tuple[int, int]:
    """(N_body, N_head): every parameter but the embedding matrices, and the output embedding's size."""
    out = model.get_output_embeddings()
    head = out.weight.numel()
    embeddings = {id(p) for m in model.modules() if "Embedding" in type(m).__name__ for p in m.parameters()}
    embeddings.add(id(out.weight))
    body = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    return body, head


def training_flops_per_token(body: int, head: int, arch: str) -> float:
    return 6.0 * (body + head * (1.0 if arch == "llama" else 0.15))


def pppl_flops(lengths: list[tuple[int, int]], body: int, head: int) -> float:
    """FLOPs of scoring sentences of (tokens T, scored S): S copies of T tokens through the body, S rows
    through the head."""
    return sum(2.0 * body * total * scored + 2.0 * head * scored for total, scored in lengths)


# ---------------------------------------------------------------------------------------------------


class _Memory:
    """Peak GPU memory of one measurement (None on the CPU)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> _Memory:
        if self.cuda:
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.peak_gb = None
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.peak_gb = round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _texts(n: int) -> list[str]:
    from lrltool.tiny import corpus_lines

    pool = corpus_lines()
    return [pool[i % len(pool)] for i in range(n)]


def _write_texts(path: Path, texts: list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": text, "lang": "ron_Latn"}, ensure_ascii=False) + "\n")
    return path


def measure_train(run: Run, dtype: str) -> None:
    """train-adapter in one precision: real tokens/s (training.json), peak memory, MFU."""
    from lrltool.lm.adapter import make_settings, train_language_adapter

    train = _write_texts(run.work / "train.jsonl", _texts(4000))
    validation = _write_texts(run.work / "validation.jsonl", _texts(32))
    settings = make_settings(
        method="seq_bn",
        max_steps=run.plan.train_steps,
        batch_size=run.plan.train_batch,
        max_seq_length=min(run.plan.train_length, run.shape.max_length),
        eval_steps=10**6,
    )
    with _Memory(run.plan.device) as memory:
        result = train_language_adapter(
            model=str(run.model),
            output=run.work / f"train-{dtype}",
            train=train,
            validation=validation,
            settings=settings,
            device=run.plan.device,
            precision="bf16" if dtype == "bfloat16" else "fp32",
            cache_dir=run.work / "cache",
            force=True,
        )
    body, head = parameter_counts(result.model)  # the seq_bn adapter's parameters included
    del result.model
    per_token = training_flops_per_token(body, head, run.shape.arch)
    tokens_per_second = float(result.info["steady_tokens_per_second"] or result.info["tokens_per_second"])
    run.figure(
        "train-adapter",
        dtype,
        tokens_per_second,
        "tokens/s",
        memory,
        tokens_per_second * per_token,
        (body, head),
        steps=settings.max_steps,
        batch=f"{settings.batch_size} x {settings.max_seq_length}",
        objective="clm" if run.shape.arch == "llama" else "mlm",
        flops_per_token=per_token,
        whole_loop_tokens_per_second=result.info["tokens_per_second"],
        precision=result.info["precision"],  # what the run's Accelerator did (training.json)
    )


def measure_finetune(run: Run) -> None:
    """finetune --task tc on the bundled SIB-200 sample (lrltool's default precision): examples/s."""
    from lrltool import models
    from lrltool.downstream.finetune import finetune, make_settings
    from lrltool.sources import fetch_source
    from lrltool.streams import read_records

    data = run.work / "sib200"
    fetch_source(source="sib200", lang="ron", input_path=ROOT / "examples" / "sib200", output=str(data))
    settings = make_settings("tc", max_steps=run.plan.finetune_steps, batch_size=32, eval_steps=10**6)
    with _Memory(run.plan.device) as memory:
        info = finetune(
            task="tc",
            model=str(run.model),
            data=data,
            lang="ron_Latn",  # fetched SIB-200 records carry no language
            out=run.work / "finetune",
            settings=settings,
            device=run.plan.device,
            force=True,
        )[0]
    examples_per_second = float(info["examples_per_second"])
    tokenizer = models.load_tokenizer(models.resolve_model(str(run.model)))
    texts = [r["text"] for r in read_records(data / "train.jsonl.zst")]
    lengths = [
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=settings.max_length)["input_ids"]
    ]
    tokens = sum(lengths) / len(lengths)
    body, head = run.counts  # the base model's
    run.figure(
        "finetune",
        "float32",  # finetune's default precision (--precision fp32 unless asked)
        examples_per_second,
        "examples/s",
        memory,
        examples_per_second * tokens * 6.0 * body,
        (body, head),
        steps=settings.max_steps,
        batch=settings.batch_size,
        mean_tokens_per_example=round(tokens, 1),
    )


def measure_pppl(run: Run, dtype: str) -> None:
    """Pseudo-perplexity of the sentences in one precision (model loading not timed): sentences/s."""
    from lrltool import devices, models
    from lrltool.lm.pppl import score_pll

    source = models.resolve_model(str(run.model))
    tokenizer = models.load_tokenizer(source)
    texts = _texts(run.plan.pppl_sentences)
    device = devices.resolve_device(run.plan.device)
    net = models.load_model(source, device=device, dtype=devices.resolve_dtype(dtype))
    body, head = parameter_counts(net)
    weights = str(next(net.parameters()).dtype).removeprefix("torch.")
    with _Memory(run.plan.device) as memory:
        result = score_pll(net, tokenizer, texts, device=device)
    del net
    flops = pppl_flops([(s.length, s.tokens) for s in result.sentences], body, head)
    run.figure(
        "pppl",
        dtype,
        len(texts) / memory.seconds,
        "sentences/s",
        memory,
        flops / memory.seconds,
        (body, head),
        sentences=len(texts),
        weights=weights,  # the dtype the model was loaded in
        scored_tokens=result.tokens,
        pppl=round(result.pppl, 2),
    )


def base_counts(model: Path, arch: str) -> tuple[int, int]:
    """``parameter_counts`` of the base model in ``model``, built on the meta device (no memory)."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(model)
    auto = transformers.AutoModelForCausalLM if arch == "llama" else transformers.AutoModelForMaskedLM
    with torch.device("meta"):
        return parameter_counts(auto.from_config(config))


@dataclass
class Run:
    """One model shape on one device: its folder, work space, the device's peak, where its figures go and
    the counts."""

    name: str
    shape: Shape
    plan: Plan
    model: Path
    work: Path
    peak: float | None
    measured: Callable[[Figure], None]
    counts: tuple[int, int]  # the base model's (N_body, N_head)

    def figure(
        self,
        measure: str,
        dtype: str,
        value: float,
        unit: str,
        memory: _Memory,
        flops: float,
        counts: tuple[int, int],
        **details: Any,
    ) -> None:
        """Make the figure (``counts``: N_body, N_head of the model that ran), say it on stderr and hand it
        to ``measured``."""
        body, head = counts
        figure = Figure(
            self.name,
            measure,
            dtype,
            round(value, 2),
            unit,
            round(memory.seconds, 1),
            memory.peak_gb,
            flops,
            mfu(flops, self.peak),
            {"n_body": body, "n_head": head, **details},
        )
        _say(
            f"{self.name} {measure} {dtype}: {figure.value:,} {unit}, peak memory {figure.peak_memory_gb} GB,"
            f" MFU {'-' if figure.mfu is None else f'{figure.mfu:.1%}'} ({figure.seconds} s)"
        )
        self.measured(figure)


def _say(text: str) -> None:
    print(f"bench-gpu: {text}", file=sys.stderr, flush=True)


def run_shape(
    name: str,
    shape: Shape,
    plan: Plan,
    peak: float | None,
    work: Path,
    measured: Callable[[Figure], None],
    failed: Callable[[dict[str, str]], None],
) -> None:
    """Build the shape's random-weight model in ``work`` and measure it, handing each figure to
    ``measured`` as soon as it exists. A measurement that fails (an out-of-memory shape, a bug) goes to
    ``failed`` with its error, its traceback to stderr, and the next one runs: one device run brings back
    every figure that can be made."""
    from lrltool.tiny import build_tiny

    started = time.perf_counter()
    try:
        sizes = asdict(shape)  # build_tiny's keyword arguments, and the architecture
        model = build_tiny(sizes.pop("arch"), work / "model", **sizes)
        counts = base_counts(model, shape.arch)
    except Exception as error:
        _failure(failed, name, "build", "-", error)
        return
    _say(f"{name}: random-weight model built in {time.perf_counter() - started:.0f} s")
    run = Run(name, shape, plan, model, work, peak, measured, counts)
    measures: list[tuple[str, str, Callable[[Run, str], None]]] = [
        ("train-adapter", dtype, measure_train) for dtype in plan.precisions
    ]
    measures.append(("finetune", "float32", lambda run, _: measure_finetune(run)))
    if shape.arch != "llama":  # pseudo-perplexity is a masked-LM measure
        measures += [("pppl", dtype, measure_pppl) for dtype in plan.precisions]
    for measure, dtype, function in measures:
        try:
            function(run, dtype)
        except Exception as error:
            _failure(failed, name, measure, dtype, error)
        _release_memory()


def _failure(
    failed: Callable[[dict[str, str]], None], model: str, measure: str, dtype: str, error: Exception
) -> None:
    import traceback

    traceback.print_exception(error, file=sys.stderr)
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    _say(f"{model} {measure} {dtype} failed: {message}")
    failed({"model": model, "measure": measure, "dtype": dtype, "error": message})


def _release_memory() -> None:
    """What a measurement (or its failure) left: Python's garbage and PyTorch's cached CUDA blocks."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def environment(plan: Plan) -> dict[str, Any]:
    import accelerate
    import torch

    from lrltool.runs import library_versions

    cuda = plan.device.startswith("cuda")
    return {
        "device": torch.cuda.get_device_name()
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "peak_bf16_tflops": peak_tflops(torch.cuda.get_device_name()) if cuda else None,
        # the libraries whose code runs (as training.json records them, and accelerate): a machine's own
        # image may hold other versions than constraints.txt
        **library_versions(),
        "accelerate": accelerate.__version__,
        "cuda": torch.version.cuda,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (tests the script)")
    parser.add_argument("--only", nargs="*", choices=sorted(SHAPES), help="model shapes to measure")
    parser.add_argument("--out", type=Path, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        built = (
            "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
        )
        print(
            f"bench-gpu: no CUDA device (torch {torch.__version__}, {built}); nothing measured",
            file=sys.stderr,
        )
        return 0
    from lrltool import ui

    ui.configure(quiet=True)
    plan, shapes = (DRY, DRY_SHAPES) if args.dry_run else (REAL, SHAPES)
    out = args.out or (DRY_RESULTS if args.dry_run else RESULTS)
    env = environment(plan)
    started = time.perf_counter()
    figures: list[Figure] = []
    errors: list[dict[str, str]] = []

    def measured(figure: Figure) -> None:
        figures.append(figure)
        write_results(out, args.dry_run, env, figures, errors, complete=False)

    def failed(error: dict[str, str]) -> None:
        errors.append(error)
        write_results(out, args.dry_run, env, figures, errors, complete=False)

    for name in args.only or list(shapes):
        with tempfile.TemporaryDirectory(prefix=f"bench-gpu-{name}-") as tmp:
            run_shape(name, shapes[name], plan, env["peak_bf16_tflops"], Path(tmp), measured, failed)
    env["seconds"] = round(time.perf_counter() - started, 1)
    write_results(out, args.dry_run, env, figures, errors, complete=True)
    failures = f', {len(errors)} measurements failed ("errors")' if errors else ""
    _say(f"{len(figures)} figures{failures} in {env['seconds']} s written to {out}")
    return 1 if errors else 0


def write_results(
    out: Path,
    dry_run: bool,
    env: dict[str, Any],
    figures: list[Figure],
    errors: list[dict[str, str]],
    *,
    complete: bool,
) -> None:
    """Write the results file whole (atomically, ``lrltool.streams.write_json``): after every figure and
    failed measurement with ``complete`` false, so that a run cut short (a lease's time limit, a killed
    process) keeps what it measured, and once more at the end with ``complete`` true (every measurement
    was tried; ``errors`` lists those that failed)."""
    from lrltool.streams import write_json

    payload = {
        "dry_run": dry_run,
        "complete": complete,
        "environment": env,
        "figures": [asdict(f) for f in figures],
        "errors": errors,
    }
    write_json(out, payload)


if __name__ == "__main__":
    raise SystemExit(main())
