"""The command line as users of the HF scripts use it: --config files, their spellings, help panels,
plain-text input, and a terminal on stdin."""

from __future__ import annotations

import json

import pytest

from lrltool import streams
from lrltool.tiny import corpus_lines

# --- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train-adapter", "finetune", "eval"])
def test_help_has_panels_examples_flags_without_placeholders_and_visible_defaults(cli, command):
    result = cli([command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    out = result.stdout
    panels = [p for p in ("Data", "Model", "Optimisation", "Output and hardware") if f"─ {p} " in out]
    assert len(panels) >= 3, out
    assert "Examples" in out and f"lrltool {command} " in out.split("Examples", 1)[1]
    assert "<bool>" not in out  # flags are flags: --resume, not --resume <bool>
    if command != "eval":
        assert "--resume" in out and "[default: 1e-4" in out  # defaults of the settings dataclasses


# --- --config and aliases ---------------------------------------------------------------------------


@pytest.fixture
def text_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    lines = corpus_lines()[:60]
    path.write_text("\n".join(lines[:30]) + "\n\n" + "\n".join(lines[30:]) + "\n", encoding="utf-8")
    return path


def test_config_file_with_command_line_overrides_hf_spellings_and_a_text_corpus(
    cli, tiny_xlmr, text_corpus, tmp_path
):
    config = tmp_path / "adapter.yaml"
    config.write_text(
        f"model: {tiny_xlmr}\nmax-steps: 3\nlr: 0.001\neval_steps: 3\nmax_seq_length: 32\n"
        "validation-fraction: 0.1\n"
    )
    out = tmp_path / "run"
    result = cli(
        ["train-adapter", "--config", str(config), "--learning_rate", "0.002",
         "--per_device_train_batch_size", "4", "--train_file", str(text_corpus), "-o", str(out),
         "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "training.json").read_text())
    settings = info["settings"]
    assert settings["lr"] == 0.002  # the command line wins over the file
    assert (settings["max_steps"], settings["eval_steps"], settings["max_seq_length"]) == (3, 3, 32)
    assert settings["batch_size"] == 4 and settings["validation_fraction"] == 0.1
    assert info["model"] == str(tiny_xlmr) and info["steps"] == 3
    assert info["data"]["records"] == 60  # one record per non-blank line of the .txt


def test_config_errors_are_one_line(cli, tmp_path):
    bad_key = tmp_path / "a.json"
    bad_key.write_text(json.dumps({"learning_rat": 1e-4}))
    result = cli(["finetune", "--config", str(bad_key), "-t", "tc", "-d", "x", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "'learning_rat' is not an option of finetune" in result.stderr and "did you mean" in result.stderr
    broken = tmp_path / "b.yaml"
    broken.write_text("lr: [1\nmodel: x\n")
    result = cli(["eval", "-t", "mlm", "--config", str(broken)])
    assert result.exit_code == 1 and "b.yaml" in result.stderr and "not valid YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    result = cli(["eval", "-t", "mlm", "--config", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "no such config file" in result.stderr


def test_unknown_option_gets_a_did_you_mean(cli):
    result = cli(["finetune", "--learning-rat", "1e-4"])
    assert result.exit_code == 2 and "--learning-rat" in result.stderr


# --- input ----------------------------------------------------------------------------------------


def test_text_input_records_and_input_format(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"first line\r\n\n  \nsecond\n")
    assert list(streams.read_records(path)) == [
        {"id": "1", "text": "first line"},
        {"id": "4", "text": "second"},
    ]
    other = tmp_path / "b.data"
    other.write_text("x y\n")
    streams.input_format = "text"
    try:
        assert list(streams.read_records(other)) == [{"id": "1", "text": "x y"}]
        jsonl = tmp_path / "c.jsonl"
        jsonl.write_text('{"text": "z"}\n')
        assert list(streams.read_records(jsonl)) == [{"text": "z"}]  # a .jsonl name stays JSONL
    finally:
        streams.input_format = None


@pytest.mark.parametrize(
    "args",
    [
        ["train-adapter", "-m", "tiny", "-o", "OUT"],
        ["eval", "-t", "mlm", "-m", "tiny"],
        ["verbalize"],
        ["cap", "--max-bytes", "1K"],
    ],
)
def test_a_terminal_on_stdin_is_refused_in_one_line(cli, args, tmp_path, monkeypatch, tiny_xlmr):
    monkeypatch.setattr(streams, "_stdin_is_terminal", lambda: True)
    args = [str(tiny_xlmr) if a == "tiny" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = cli(args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: this command reads records from stdin, but stdin is a terminal")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# --- start-up: a command loads its own module only ------------------------------------------------

_LOADED = """
import atexit, sys
watched = ("lrltool.cli.", "torch", "pydantic")
atexit.register(lambda: sys.stderr.write(
    "\\nLOADED " + " ".join(sorted(m for m in sys.modules if m.startswith(watched)))
))
sys.argv = ["lrltool", *sys.argv[1:]]
from lrltool.cli import main
main()
"""


def _loaded(*argv: str) -> tuple[int, str, set[str]]:
    from tests.paths import run_python

    result = run_python(_LOADED, *argv)
    head, _, loaded = result.stderr.rpartition("\nLOADED ")
    return result.returncode, result.stdout + head, set(loaded.split())


def test_command_modules_name_the_module_that_registers_each_command():
    import typer.main

    from lrltool import cli

    group = typer.main.get_command(cli.app)
    assert set(group.commands) == set(cli.COMMAND_MODULES)
    for name, command in group.commands.items():
        assert command.callback.__module__ == f"lrltool.cli.{cli.COMMAND_MODULES[name]}", name
    assert set(cli.COMMAND_MODULES.values()) == set(cli.MODULES)


def test_a_command_imports_only_its_own_module_and_no_torch_or_pydantic():
    code, out, loaded = _loaded("languages", "ron")
    assert code == 0 and "ron_Latn" in out
    assert {m for m in loaded if m.count(".") == 2} >= {"lrltool.cli.data", "lrltool.cli.group"}
    others = {"lrltool.cli.train", "lrltool.cli.evaluate", "lrltool.cli.report", "lrltool.cli.publish"}
    assert not loaded & (others | {"torch", "pydantic"})


def test_help_and_a_typo_still_see_every_command():
    code, out, loaded = _loaded("--help")
    assert code == 0 and {"lrltool.cli.train", "lrltool.cli.evaluate", "lrltool.cli.publish"} <= loaded
    for name in ("fetch", "train-adapter", "finetune", "eval", "report", "push"):
        assert f" {name} " in out
    code, out, _ = _loaded("finetun")
    assert code == 2 and "Did you mean 'finetune'?" in out


def test_transformers_starts_without_scikit_learn_or_scipy_and_our_metrics_still_have_them():
    """lrltool/__init__.py: transformers is told scikit-learn and scipy are missing (it would import
    sklearn.metrics and scipy.optimize at every model import, only for assisted generation and the
    object-detection losses); lrltool's metrics import scikit-learn themselves."""
    import inspect

    from tests.paths import run_python

    code = (
        "import sys, lrltool\n"
        "from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForCausalLM\n"
        "import adapters, transformers.generation.candidate_generator as generator\n"
        "config = AutoConfig.for_model('xlm-roberta', vocab_size=64, hidden_size=16, num_hidden_layers=1,\n"
        "                              num_attention_heads=2, intermediate_size=32)\n"
        "model = AutoModelForMaskedLM.from_config(config)  # imports modeling_utils and the losses\n"
        "print('sklearn' in sys.modules, 'scipy' in sys.modules, hasattr(generator, 'roc_curve'))\n"
        "from lrltool.downstream import metrics\n"
        "print(round(metrics.classification_metrics(['a', 'b', 'b'], ['a', 'b', 'a'])['macro_f1'], 6))\n"
    )
    result = run_python(code, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False False False", "0.666667"]
    # The premises: without it transformers imports both (if these fail, that part of the finder can go).
    import transformers.generation.candidate_generator as generator
    import transformers.loss.loss_for_object_detection as detection

    source = inspect.getsource(generator)
    assert "if is_sklearn_available():\n    from sklearn.metrics import roc_curve" in source
    source = inspect.getsource(detection)
    assert "if is_scipy_available():\n    from scipy.optimize import linear_sum_assignment" in source
