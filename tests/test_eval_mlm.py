"""`lrltool eval --task mlm` on the real app: the metric records it writes (values against the
one-copy-at-a-time reference of test_pppl), where method/source/lang come from, and bad input."""

from __future__ import annotations

import json
import math

import orjson
import pytest
import torch

from lrltool import models
from lrltool.records import METRIC_KEYS
from tests.lm_helpers import reference_pll

TEXTS = ["Ana are mere și pere.", "Vremea este frumoasă astăzi în București, spuse el încet."]


def _write_texts(path, texts=TEXTS, lang="ron_Latn", **extra):
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(
                json.dumps({"id": f"s{i}", "text": text, "lang": lang, "source": "flores", **extra}) + "\n"
            )
    return path


def _records(stdout: str) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def _reference(model_dir, adapter=None, texts=TEXTS, **options):
    """PLLs and counts from the independent loop, on a model loaded the way lrltool loads it."""
    source = models.resolve_model(str(model_dir))
    model = models.load_model(source)
    if adapter is not None:
        models.load_adapter(model, adapter)
    tokenizer = models.load_tokenizer(source)
    return [reference_pll(model, tokenizer, t, **options) for t in texts]


def _save_random_adapter(model_dir, out, method, seed=0):
    source = models.resolve_model(str(model_dir))
    model = models.load_model(source)
    torch.manual_seed(seed)
    models.add_adapter(model, "lang", method)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # only the adapter's weights: make them change the output
                p.add_(torch.randn(p.shape, generator=generator) * 0.5)
    models.save_adapter(model, "lang", out)
    return out


@pytest.fixture(scope="module")
def inv_run(tiny_xlmr, tmp_path_factory):
    """A train-adapter run folder: adapter/ (seq_bn_inv) + training.json."""
    run = tmp_path_factory.mktemp("run-inv")
    _save_random_adapter(tiny_xlmr, run / "adapter", "seq_bn_inv")
    training = {"command": "train-adapter", "method": "seq_bn_inv", "source": "glotcc", "lang": "ron_Latn"}
    (run / "training.json").write_text(json.dumps(training))
    return run


@pytest.fixture(scope="module")
def seq_bn_adapter(tiny_bert, tmp_path_factory):
    """A bare AdapterHub folder (no run around it), made for the tiny BERT."""
    return _save_random_adapter(tiny_bert, tmp_path_factory.mktemp("bert-adapter") / "seq_bn", "seq_bn")


def test_writes_the_three_metric_records(cli, tiny_xlmr, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(
        ["eval", "--task", "mlm", "--model", tiny_xlmr, data, "--per-sentence", tmp_path / "s.jsonl"]
    )
    assert result.exit_code == 0, result.stderr
    records = _records(result.stdout)
    assert [r["metric"] for r in records] == ["pppl", "pppl_mean", "pppl_word"]
    reference = _reference(tiny_xlmr)
    total = sum(p for p, _ in reference)
    tokens = sum(c for _, c in reference)
    words = 5 + 9
    expected = {
        "pppl": math.exp(-total / tokens),
        "pppl_mean": sum(math.exp(-p / c) for p, c in reference) / 2,
        "pppl_word": math.exp(-total / words),
    }
    for record in records:
        assert list(record) == list(METRIC_KEYS)
        assert record["value"] == pytest.approx(expected[record["metric"]], rel=1e-5)
        assert record["lang"] == "ron_Latn"
        assert record["model"] == str(tiny_xlmr)
        assert (record["adapter"], record["method"], record["source"]) == (None, "base", None)
        assert (record["task"], record["n"], record["split"]) == ("mlm", 2, "test")
        assert record["details"]["tokens"] == tokens
        assert record["details"]["words"] == words
        assert record["details"]["truncated"] == 0
        settings = record["settings"]
        assert (settings["variant"], settings["paper_compat"], settings["max_length"]) == (
            "original",
            False,
            128,
        )
        assert settings["data_hash"].startswith("sha256:") and len(settings["data_hash"]) == 71
    per_sentence = _records((tmp_path / "s.jsonl").read_text())
    assert [r["id"] for r in per_sentence] == ["s0", "s1"]
    for row, (pll, count) in zip(per_sentence, reference, strict=True):
        assert row["pll"] == pytest.approx(pll, rel=1e-5)
        assert row["tokens"] == count
        assert row["pppl"] == pytest.approx(math.exp(-pll / count), rel=1e-5)
    assert [r["words"] for r in per_sentence] == [5, 9]
    assert "eval mlm: 2 in, 3 out" in result.stderr


def test_variant_and_paper_compat_reach_the_scorer_and_the_settings(cli, tiny_bert, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    args = ["eval", "--task", "mlm", "-m", tiny_bert, data, "--variant", "within_word_l2r", "--paper-compat"]
    result = cli(args)
    assert result.exit_code == 0, result.stderr
    pppl = _records(result.stdout)[0]
    reference = _reference(tiny_bert, variant="within_word_l2r", paper_compat=True)
    assert pppl["value"] == pytest.approx(
        math.exp(-sum(p for p, _ in reference) / sum(c for _, c in reference)), rel=1e-5
    )
    assert pppl["details"]["tokens"] == sum(c for _, c in reference)
    assert pppl["settings"]["variant"] == "within_word_l2r"
    assert pppl["settings"]["paper_compat"] is True


def test_run_folder_gives_method_and_source_and_its_adapter_applies(cli, tiny_xlmr, inv_run, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, "--adapter", inv_run, data])
    assert result.exit_code == 0, result.stderr
    mean = _records(result.stdout)[1]
    assert (mean["adapter"], mean["method"], mean["source"]) == (str(inv_run), "seq_bn_inv", "glotcc")
    reference = _reference(tiny_xlmr, adapter=inv_run)
    base = _reference(tiny_xlmr)
    expected = sum(math.exp(-p / c) for p, c in reference) / 2
    assert mean["value"] == pytest.approx(expected, rel=1e-5)
    assert mean["value"] != pytest.approx(sum(math.exp(-p / c) for p, c in base) / 2, rel=1e-3)
    # The options override what the run says.
    again = cli(
        ["eval", "--task", "mlm", "-m", tiny_xlmr, "--adapter", inv_run, data, "--source", "conceptnet"]
    )
    assert _records(again.stdout)[0]["source"] == "conceptnet"


def test_bare_adapter_folder_method_from_its_config(cli, tiny_bert, seq_bn_adapter, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(["eval", "--task", "mlm", "-m", tiny_bert, "--adapter", seq_bn_adapter, data, "-l", "ro"])
    assert result.exit_code == 0, result.stderr
    record = _records(result.stdout)[0]
    assert (record["method"], record["source"], record["lang"]) == ("seq_bn", None, "ron_Latn")
    reference = _reference(tiny_bert, adapter=seq_bn_adapter)
    total, tokens = sum(p for p, _ in reference), sum(c for _, c in reference)
    assert record["value"] == pytest.approx(math.exp(-total / tokens), rel=1e-5)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A `full` train-adapter run: model/ (other weights than the base, same tokenizer) + training.json."""
    from lrltool.tiny import build_tiny

    run = tmp_path_factory.mktemp("run-full")
    build_tiny("xlmr", run / "model", seed=1)
    (run / "training.json").write_text(json.dumps({"method": "full", "source": "conceptnet"}))
    return run


@pytest.mark.parametrize("how", ["model", "adapter"])
def test_full_run_scores_its_model_as_method_full(cli, tiny_xlmr, full_run, tmp_path, how):
    data = _write_texts(tmp_path / "flores.jsonl")
    if how == "model":  # --model RUN/model
        args, adapter = ["-m", full_run / "model"], None
    else:  # --model BASE --adapter RUN, as pipeline.mk calls it
        args, adapter = ["-m", tiny_xlmr, "--adapter", full_run], str(full_run)
    result = cli(["eval", "--task", "mlm", *args, data])
    assert result.exit_code == 0, result.stderr
    record = _records(result.stdout)[0]
    assert (record["method"], record["source"], record["adapter"]) == ("full", "conceptnet", adapter)
    reference = _reference(full_run / "model")
    base = _reference(tiny_xlmr)
    expected = math.exp(-sum(p for p, _ in reference) / sum(c for _, c in reference))
    assert record["value"] == pytest.approx(expected, rel=1e-5)
    assert record["value"] != pytest.approx(
        math.exp(-sum(p for p, _ in base) / sum(c for _, c in base)), rel=1e-3
    )


def test_progress_on_stderr(cli, tiny_xlmr, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, data], env={"LRLTOOL_PROGRESS": "1"})
    assert result.exit_code == 0, result.stderr
    assert "pseudo-perplexity" in result.stderr
    assert "sentences 2/2" in result.stderr and "tokens_per_s" in result.stderr
    assert len(_records(result.stdout)) == 3  # stdout still carries the records only


def test_truncation_is_reported(cli, tiny_xlmr, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, data, "--max-length", "12"])
    assert result.exit_code == 0, result.stderr
    record = _records(result.stdout)[0]
    assert record["details"]["truncated"] == 1
    assert record["settings"]["max_length"] == 12
    assert "warning: 1 of 2 texts were longer than 12 tokens" in result.stderr


def test_stdin_and_records_of_one_language_from_stdin(cli, tiny_xlmr, tmp_path):
    data = _write_texts(tmp_path / "flores.jsonl", lang="mlt_Latn")
    result = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, "-q"], input=data.read_text())
    assert result.exit_code == 0, result.stderr
    assert {r["lang"] for r in _records(result.stdout)} == {"mlt_Latn"}
    assert result.stderr == ""


# --- bad input: one line, exit 1 (usage 2), no traceback, nothing written ----------------------------


def _assert_one_line_error(result, expected, code=1, leftovers=()):
    assert result.exit_code == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for path in leftovers:
        assert not path.exists()
        assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file either


@pytest.fixture
def outputs(tmp_path):
    return tmp_path / "out" / "metrics.jsonl", tmp_path / "out" / "sentences.jsonl"


def _eval(cli, model, data, outputs, *extra):
    out, sentences = outputs
    return cli(["eval", "--task", "mlm", "-m", model, data, "-o", out, "--per-sentence", sentences, *extra])


def test_empty_evaluation_set(cli, tiny_xlmr, tmp_path, outputs):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    _assert_one_line_error(_eval(cli, tiny_xlmr, data, outputs), "nothing to evaluate", leftovers=outputs)


def test_record_without_text(cli, tiny_xlmr, tmp_path, outputs):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "text": "Da"}\n{"id": "b", "sentence": "Nu"}\n')
    result = _eval(cli, tiny_xlmr, data, outputs)
    _assert_one_line_error(result, f"{data}:2: text record has no 'text' key", leftovers=outputs)
    # --skip-bad-lines counts it and scores the rest.
    skipped = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, data, "--skip-bad-lines"])
    assert skipped.exit_code == 0 and _records(skipped.stdout)[0]["n"] == 1


def test_empty_text(cli, tiny_xlmr, tmp_path, outputs):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "text": "  "}\n')
    _assert_one_line_error(_eval(cli, tiny_xlmr, data, outputs), ":1: text record has an empty 'text'")


def test_mixed_languages_need_lang(cli, tiny_xlmr, tmp_path, outputs):
    data = tmp_path / "mixed.jsonl"
    data.write_text('{"text": "Da", "lang": "ron_Latn"}\n{"text": "Iva", "lang": "mlt_Latn"}\n')
    _assert_one_line_error(_eval(cli, tiny_xlmr, data, outputs), "mix languages (mlt_Latn, ron_Latn)")
    assert cli(["eval", "--task", "mlm", "-m", tiny_xlmr, data, "--lang", "ron"]).exit_code == 0


def test_adapter_for_another_model_type(cli, tiny_xlmr, seq_bn_adapter, tmp_path, outputs):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = _eval(cli, tiny_xlmr, data, outputs, "--adapter", seq_bn_adapter)
    _assert_one_line_error(
        result, "the adapter was made for a bert model, not xlm-roberta", leftovers=outputs
    )


def test_adapter_for_another_hidden_size(cli, tmp_path, inv_run, outputs):
    from lrltool.tiny import build_tiny

    other = build_tiny("xlmr", tmp_path / "xlmr-32", hidden_size=32)
    data = _write_texts(tmp_path / "flores.jsonl")
    result = _eval(cli, other, data, outputs, "--adapter", inv_run)
    _assert_one_line_error(result, "made for hidden size 64, the model has 32", leftovers=outputs)


def test_full_run_from_another_base_model(cli, tiny_bert, full_run, tmp_path, outputs):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = _eval(cli, tiny_bert, data, outputs, "--adapter", full_run)
    _assert_one_line_error(result, "the run trained a xlm-roberta model of hidden size 64", leftovers=outputs)


def test_decoder_model(cli, tiny_llama, tmp_path, outputs):
    data = _write_texts(tmp_path / "flores.jsonl")
    result = _eval(cli, tiny_llama, data, outputs)
    _assert_one_line_error(result, "is a decoder (llama)", leftovers=outputs)
    assert "pseudo-perplexity is defined for masked language models" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "xyz", "-m", "M"], "unknown task 'xyz'"),
        (["--task", "mlm"], "--task mlm needs --model"),
        (["--task", "mlm", "-m", "{model}", "--variant", "l2r"], "unknown variant 'l2r'"),
        (["--task", "mlm", "-m", "{model}", "--max-length", "500"], "max length 500 is out of range"),
        (["--task", "mlm", "-m", "{model}", "--method", "magic"], "unknown method 'magic'"),
    ],
)
def test_usage_errors(cli, tiny_xlmr, tmp_path, outputs, args, expected):
    data = _write_texts(tmp_path / "flores.jsonl")
    args = [a.format(model=tiny_xlmr) for a in args]
    out, sentences = outputs
    result = cli(["eval", *args, str(data), "-o", out, "--per-sentence", sentences])
    _assert_one_line_error(result, expected, code=2, leftovers=outputs)


def test_fetch_flores_pipe_into_eval(tiny_xlmr, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.paths import EXAMPLES

    lrltool = Path(sys.executable).parent / "lrltool"
    per_sentence = tmp_path / "sentences.jsonl.zst"
    command = (
        f"{lrltool} fetch flores --lang ron --input {EXAMPLES / 'flores'} --quiet"
        f" | {lrltool} eval --task mlm -m {tiny_xlmr} --per-sentence {per_sentence} -q"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    records = _records(done.stdout)
    assert [r["metric"] for r in records] == ["pppl", "pppl_mean", "pppl_word"]
    assert {(r["lang"], r["split"], r["n"]) for r in records} == {("ron_Latn", "devtest", 204)}
    from lrltool.streams import read_records

    rows = list(read_records(per_sentence))
    assert [r["id"] for r in rows] == [f"devtest:{i}" for i in range(1, 205)]
    assert math.fsum(r["pll"] for r in rows) == pytest.approx(records[0]["details"]["pll"], rel=1e-12)


# --- adapters follow the model's device and dtype ---------------------------------------------------


def _tensors(model):
    return [*model.named_parameters(), *model.named_buffers()]


def test_the_adapter_is_moved_with_the_model_to_the_requested_device_and_dtype(
    tiny_xlmr, inv_run, tmp_path, monkeypatch
):
    """A device move recorded by a test double: "meta" stands for CUDA (the adapter is made on the CPU)."""
    from lrltool import devices
    from lrltool.lm import evaluate

    class Scored(Exception):
        pass

    def record(lm, *args, **kwargs):
        seen.extend(_tensors(lm))
        raise Scored

    seen = []
    monkeypatch.setattr(devices, "resolve_device", lambda name: torch.device("meta"))
    monkeypatch.setattr(evaluate, "score_pll", record)
    with pytest.raises(Scored):
        evaluate.evaluate_mlm(
            input_path=str(_write_texts(tmp_path / "flores.jsonl")),
            model=str(tiny_xlmr),
            adapter=str(inv_run),
            dtype="bfloat16",
        )
    names = [name for name, _ in seen]
    assert any("invertible_adapters" in n for n in names) and any(".adapters." in n for n in names)
    assert [n for n, t in seen if t.device.type != "meta"] == []
    assert [n for n, t in seen if t.is_floating_point() and t.dtype != torch.bfloat16] == []


def test_bfloat16_with_an_adapter_end_to_end_on_cpu(cli, tiny_xlmr, inv_run, tmp_path):
    """The issue's case: "mat1 and mat2 must have the same dtype"."""
    data = _write_texts(tmp_path / "flores.jsonl")
    result = cli(
        ["eval", "--task", "mlm", "-m", tiny_xlmr, "--adapter", inv_run, data, "--dtype", "bfloat16"]
    )
    assert result.exit_code == 0, result.stderr
    mean = _records(result.stdout)[1]
    reference = sum(math.exp(-p / c) for p, c in _reference(tiny_xlmr, adapter=inv_run)) / 2
    assert mean["value"] == pytest.approx(reference, rel=0.1)  # bf16 keeps ~3 significant digits


def test_eval_refuses_an_output_it_cannot_write_before_scoring(cli, tiny_xlmr, tmp_path, monkeypatch):
    import errno
    import tempfile

    from lrltool.lm import evaluate

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        evaluate, "score_pll", lambda *a, **k: pytest.fail("scored before checking the output")
    )
    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    data, out = _write_texts(tmp_path / "flores.jsonl"), tmp_path / "out" / "pppl.jsonl"
    result = cli(["eval", "--task", "mlm", "-m", tiny_xlmr, data, "-o", out])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {out}: cannot write: the disk is full (no space left on device);"
        " free some space, or write elsewhere"
    ]
    assert not out.exists()
