"""Publishing a train-adapter run: the AdapterHub card, `push` (with a stand-in for the hub's API: no
network here), and why the adapter folder holds two weight files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from lrltool import models
from lrltool.records import MetricRecord
from lrltool.tiny import corpus_lines

FILES = ["README.md", "adapter.safetensors", "adapter_config.json", "pytorch_adapter.bin", "training.json"]


@pytest.fixture(scope="module")
def adapter_run(tiny_xlmr, tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from lrltool.cli import app

    root = tmp_path_factory.mktemp("publish")
    corpus = root / "train.jsonl"
    lines = corpus_lines()[:40]
    corpus.write_text(
        "".join(json.dumps({"id": str(i), "text": t, "lang": "ron_Latn", "source": "glotcc"}) + "\n"
                for i, t in enumerate(lines))
    )  # fmt: skip
    out = root / "run"
    args = ["train-adapter", "-m", str(tiny_xlmr), "--train", str(corpus), "-o", str(out), "--max-steps", "2"]
    args += ["-b", "4", "--max-length", "32", "--cache-dir", str(root / "cache"), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_adapter_folder_has_the_adapterhub_card(adapter_run):
    card = (adapter_run / "adapter" / "README.md").read_text()
    info = json.loads((adapter_run / "training.json").read_text())
    assert _front_matter(card) == {
        "library_name": "adapter-transformers",
        "tags": ["adapter-transformers", "xlm-roberta", "seq_bn", "language-adapter"],
        "datasets": ["cis-lmu/GlotCC-V1"],
        "language": ["ro"],
        "license": "apache-2.0",
    }  # no base_model: the base is a local folder, not a hub id
    assert f"sha256 of the texts `{info['data']['hash']}`" in card
    assert "| lr | 0.0001 |" in card and "model.load_adapter(REPO, source='hf', set_active=True)" in card
    assert "Not measured yet" in card


def test_push_dry_run_lists_the_files_and_sends_nothing(cli, adapter_run, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any use of the hub would fail
    before = (adapter_run / "adapter" / "README.md").read_text()
    result = cli(["push", str(adapter_run), "me/xlmr-ron", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == FILES
    assert "would go to me/xlmr-ron (private)" in result.stderr
    assert (adapter_run / "adapter" / "README.md").read_text() == before


class FakeHub:
    calls: list = []  # noqa: RUF012 - the record of calls, reset by each test

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(
            ("upload_folder", kwargs, sorted(p.name for p in Path(kwargs["folder_path"]).iterdir()))
        )

    def upload_file(self, **kwargs):
        self.calls.append(("upload_file", kwargs))


def _pppl(value, *, adapter, method, hash_="flores-ron"):
    return MetricRecord(
        metric="pppl_mean", value=value, lang="ron_Latn", model=adapter[1], task="mlm", method=method,
        adapter=adapter[0], source="glotcc" if adapter[0] else None, n=12, details={"data_hash": hash_},
    ).to_json()  # fmt: skip


def test_push_uploads_privately_with_the_measured_perplexity_on_the_card(
    cli, adapter_run, tiny_xlmr, tmp_path, monkeypatch
):
    import huggingface_hub

    results = tmp_path / "results.jsonl"
    records = [
        _pppl(1108.0, adapter=(str(adapter_run), str(tiny_xlmr)), method="seq_bn"),
        _pppl(1155.0, adapter=(None, str(tiny_xlmr)), method="base"),
        _pppl(999.0, adapter=(None, str(tiny_xlmr)), method="base", hash_="other-data"),
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    result = cli(["push", str(adapter_run), "me/xlmr-ron", "--results", str(results), "--token", "t0"])
    assert result.exit_code == 0, result.stderr
    assert FakeHub.calls[0] == ("init", "t0")
    assert FakeHub.calls[1] == (
        "create_repo",
        "me/xlmr-ron",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    _, upload, names = FakeHub.calls[2]
    assert upload["repo_id"] == "me/xlmr-ron" and Path(upload["folder_path"]) == adapter_run / "adapter"
    assert names == [f for f in FILES if f != "training.json"]
    assert FakeHub.calls[3][1]["path_in_repo"] == "training.json"
    card = (adapter_run / "adapter" / "README.md").read_text()
    assert "| mean of per-sentence pseudo-perplexity (the paper's number) | 1108.00 | 1155.00 | 12 |" in card


def test_push_refuses_what_is_not_a_finished_adapter_run(cli, adapter_run, tmp_path):
    result = cli(["push", str(tmp_path), "me/x", "--dry-run"])
    assert result.exit_code == 1 and "not a train-adapter run" in result.stderr
    result = cli(["push", str(adapter_run), "no-owner", "--dry-run"])
    assert result.exit_code == 2 and "'no-owner' is not a repository id" in result.stderr


def test_plain_adapters_code_needs_the_pickle_file(tiny_xlmr, tmp_path):
    """Why save_adapter writes pytorch_adapter.bin beside adapter.safetensors: adapters 1.3.0's
    ``model.load_adapter(dir)`` (and ``load_adapter(repo, source='hf')``) reads only the .bin unless the
    caller passes ``use_safetensors=True``."""
    import adapters
    from transformers import AutoModelForMaskedLM

    source = models.resolve_model(str(tiny_xlmr))
    net = models.load_model(source)
    models.add_adapter(net, "ron", "seq_bn")
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.5)
    saved = {n: p.detach().clone() for n, p in net.named_parameters() if "adapters.ron" in n}
    models.save_adapter(net, "ron", tmp_path / "adapter")

    def plain(**kwargs):
        model = AutoModelForMaskedLM.from_pretrained(str(tiny_xlmr))
        adapters.init(model)
        name = model.load_adapter(str(tmp_path / "adapter"), **kwargs)
        return {n: p.detach() for n, p in model.named_parameters() if f"adapters.{name}." in n}

    loaded = plain()
    assert set(loaded) == set(saved) and len(saved) > 0
    for n in saved:
        torch.testing.assert_close(loaded[n], saved[n], rtol=0, atol=0)
    (tmp_path / "adapter" / "pytorch_adapter.bin").unlink()
    with pytest.raises(OSError):
        plain()  # the default reads pytorch_adapter.bin only
    safe = plain(use_safetensors=True)
    for n in saved:
        torch.testing.assert_close(safe[n], saved[n], rtol=0, atol=0)


# --- finetune runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task_runs(tiny_xlmr, tmp_path_factory) -> dict:
    """A finetune --seeds 1,2 root (task adapter), a full fine-tuning run, and eval's records of the root."""
    from task_helpers import make_task_data
    from typer.testing import CliRunner

    from lrltool.cli import app

    root = tmp_path_factory.mktemp("publish-tc")
    data = make_task_data(root / "tc", "tc")
    base = ["finetune", "-t", "tc", "-d", str(data), "-m", str(tiny_xlmr), "--device", "cpu", "-b", "8"]
    base += ["--max-steps", "2", "--eval-steps", "2", "--lang", "ron"]
    runner = CliRunner()
    for extra in (
        ["--seeds", "1,2", "-o", str(root / "seeds")],
        ["--task-method", "full", "-o", str(root / "full")],
    ):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", "--task", "tc", "--run", str(root / "seeds"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (root / "results.jsonl").write_text(result.stdout)
    return {"seeds": root / "seeds", "full": root / "full", "results": root / "results.jsonl"}


TASK_FILES = [
    "README.md",
    "adapter.safetensors",
    "adapter_config.json",
    "head_config.json",
    "model_head.safetensors",
    "pytorch_adapter.bin",
    "pytorch_model_head.bin",
    "training.json",
]


def test_push_of_a_finetune_seeds_root_names_the_seeds_and_a_seed_lists_its_files(
    cli, task_runs, monkeypatch
):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any use of the hub would fail
    result = cli(["push", str(task_runs["seeds"]), "me/xlmr-ron-tc", "--dry-run"])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{task_runs['seeds']} holds the finetune runs of several seeds (seed-1, seed-2)" in result.stderr
    assert f"lrltool push {task_runs['seeds'] / 'seed-1'} REPO" in result.stderr
    result = cli(["push", str(task_runs["seeds"] / "seed-2"), "me/xlmr-ron-tc", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == TASK_FILES
    assert "8 files would go to me/xlmr-ron-tc (private)" in result.stderr
    assert not (task_runs["seeds"] / "seed-2" / "adapter" / "README.md").exists()  # dry run: nothing written
    result = cli(["push", str(task_runs["full"]), "me/xlmr-ron-tc-full", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == sorted(
        [*(p.name for p in (task_runs["full"] / "model").iterdir()), "README.md", "training.json"]
    )
    assert "config.json" in result.stdout and "model.safetensors" in result.stdout


def test_push_of_a_finetune_run_uploads_the_task_adapter_with_a_hub_card(cli, task_runs, monkeypatch):
    import huggingface_hub

    run = task_runs["seeds"] / "seed-1"
    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    result = cli(
        ["push", str(run), "me/xlmr-ron-tc", "--results", str(task_runs["results"]), "--license", "mit"]
    )
    assert result.exit_code == 0, result.stderr
    assert FakeHub.calls[1] == (
        "create_repo",
        "me/xlmr-ron-tc",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    _, upload, names = FakeHub.calls[2]
    assert upload["repo_id"] == "me/xlmr-ron-tc" and Path(upload["folder_path"]) == run / "adapter"
    assert upload["repo_type"] == "model" and names == [f for f in TASK_FILES if f != "training.json"]
    assert FakeHub.calls[3][1]["path_in_repo"] == "training.json" and len(FakeHub.calls) == 4
    assert Path(FakeHub.calls[3][1]["path_or_fileobj"]) == run / "training.json"
    info = json.loads((run / "training.json").read_text())
    test = {
        r["metric"]: r["value"]
        for r in map(json.loads, task_runs["results"].read_text().splitlines())
        if r["seed"] == 1 and r["aggregate"] is None
    }
    card = (run / "adapter" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta == {
        "library_name": "adapter-transformers",
        "pipeline_tag": "text-classification",
        "tags": ["adapter-transformers", "xlm-roberta", "tc", "sib200", "task-adapter", "lrltool"],
        "datasets": ["Davlan/sib200"],
        "language": ["ro"],
        "license": "mit",
        "metrics": ["f1", "accuracy"],
        "model-index": [
            {
                "name": "xlmr-ron-tc",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": "topic classification (SIB-200)"},
                        "dataset": {
                            "type": "Davlan/sib200",
                            "name": "sib200",
                            "split": split,
                            "config": "ron_Latn",
                        },
                        "metrics": metrics,
                    }
                    for split, metrics in (
                        (
                            "validation",
                            [{"type": "f1", "value": round(info["best_score"], 4), "name": "macro-F1"}],
                        ),
                        (
                            "test",
                            [
                                {"type": "f1", "value": round(test["macro_f1"], 4), "name": "macro-F1"},
                                {"type": "accuracy", "value": round(test["accuracy"], 4), "name": "accuracy"},
                            ],
                        ),
                    )
                ],
            }
        ],
    }  # no base_model: the base is a local folder, not a hub id
    assert f"| macro-F1 | {test['macro_f1']:.4f} | 12 |" in card
    assert "model.load_adapter(REPO, source='hf', load_as='tc', use_safetensors=True)" in card


def test_push_of_a_full_finetune_run_says_transformers(cli, task_runs, monkeypatch):
    import huggingface_hub

    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    result = cli(["push", str(task_runs["full"]), "me/full", "--public"])
    assert result.exit_code == 0, result.stderr
    assert FakeHub.calls[1][2]["private"] is False
    assert Path(FakeHub.calls[2][1]["folder_path"]) == task_runs["full"] / "model"
    meta = _front_matter((task_runs["full"] / "model" / "README.md").read_text())
    assert meta["library_name"] == "transformers" and meta["tags"][:2] == ["transformers", "xlm-roberta"]
    assert "task-adapter" not in meta["tags"] and meta["metrics"] == ["f1"]  # validation only: no --results
    assert [r["dataset"]["split"] for r in meta["model-index"][0]["results"]] == ["validation"]
