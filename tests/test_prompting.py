"""downstream.prompting: exact label scoring, shots, metrics, adapters and refusals on the tiny LLaMA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from task_helpers import prompt_records

from lrltool import models
from lrltool.downstream import prompting
from lrltool.downstream.data import Example
from lrltool.downstream.metrics import classification_metrics
from lrltool.errors import InputError, LrlError, ModelError, UsageError
from lrltool.streams import read_records, write_records

TC_TRAIN = [
    ("t1", "Echipa națională a câștigat meciul de fotbal aseară.", "sports"),
    ("t2", "Jucătorii au marcat trei goluri în finală.", "sports"),
    ("t3", "Parlamentul a votat o nouă lege electorală.", "politics"),
    ("t4", "Guvernul a demisionat după alegeri.", "politics"),
    ("t5", "Turiștii au vizitat castelul și muzeul orașului.", "travel"),
    ("t6", "Medicii recomandă mișcare zilnică pentru inimă.", "health"),
    ("t7", "Munții Carpați traversează România.", "geography"),
]
TC_TEST = [
    ("q1", "Antrenorul a lăudat echipa după victorie.", "sports"),
    ("q2", "Senatorii au dezbătut bugetul.", "politics"),
    ("q3", "Spitalul a primit aparate noi.", "health"),
    ("q4", "Dunărea se varsă în Marea Neagră.", "geography"),
    ("q5", "Un film nou a avut premiera la festival.", "entertainment"),
    ("q6", "Cercetătorii au construit un robot.", "science/technology"),
    ("q7", "Zborul spre Paris a fost anulat.", "travel"),
]
SA_TRAIN = [("s1", "Un film minunat, mi-a plăcut mult.", 1), ("s2", "Mâncare rece și servire proastă.", 0)]
SA_TRAIN_MORE = [*SA_TRAIN, ("s3", "Nu merită.", 0), ("s4", "Bun.", 1)]
SA_TEST = [("u1", "Excelent, recomand!", "1"), ("u2", "O pierdere de timp.", "0"), ("u3", "Foarte bun.", 1)]


def _examples(rows):
    return [Example(i, text, str(label)) for i, text, label in rows]


def _write_split(folder: Path, split: str, rows, suffix=".jsonl.zst") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}{suffix}"
    with write_records(path) as writer:
        for i, text, label in rows:
            writer.write({"id": i, "text": text, "label": label})
    return path


@pytest.fixture(scope="module")
def llama(tiny_llama):
    source = models.resolve_model(str(tiny_llama))
    return models.load_tokenizer(source), models.load_model(source)


@pytest.fixture
def tc_data(tmp_path):
    folder = tmp_path / "sib"
    _write_split(folder, "train", TC_TRAIN)
    _write_split(folder, "test", TC_TEST)
    return folder


def naive_scores(model, contexts, continuations):
    """The reference: one unpadded forward pass per (context, continuation), log-probs summed by hand."""
    result = np.zeros((len(contexts), len(continuations)))
    with torch.no_grad():
        for i, context in enumerate(contexts):
            for j, continuation in enumerate(continuations):
                ids = torch.tensor([list(context) + list(continuation)])
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                result[i, j] = sum(
                    logprobs[len(context) - 1 + k, token].item() for k, token in enumerate(continuation)
                )
    return result


# --------------------------------------------------------------------------------------------------
# Templates and tokens


def test_default_prompts_read_as_documented():
    tc = prompting.load_template("tc")
    assert tc.render("Ploaia cade.") == (
        "What is the topic of the text? Answer with one of: science, travel, politics, sports, health,"
        " entertainment, geography.\n\nText: Ploaia cade.\nTopic:"
    )
    assert [tc.continuation(label) for label in ("science/technology", "geography")] == [
        " science",
        " geography",
    ]
    sa = prompting.load_template("sa")
    shot = Example("s", "Bun {answer} {text}", "1")  # braces in a text stay as they are
    assert sa.render("Rău.", [shot]) == (
        "Is the sentiment of the text negative or positive? Answer with one of: negative, positive.\n\n"
        "Text: Bun {answer} {text}\nSentiment: positive\n\nText: Rău.\nSentiment:"
    )
    assert sa.labels == ["0", "1"] and sa.answer_prefix == "Sentiment:"


def test_template_file_overrides_and_changes_the_hash(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"example": "{text} => {answer}", "verbalizers": {"0": "bad", "1": "good"}}))
    template = prompting.load_template("sa", path)
    assert template.render("x") == (
        "Is the sentiment of the text negative or positive? Answer with one of: bad, good.\n\nx =>"
    )
    assert template.continuation("1") == " good" and template.answer_prefix == " =>"
    assert template.digest != prompting.load_template("sa").digest
    assert len(template.digest) == 12 and template.origin == "t.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "the template is not a JSON object"),
        ('{"prompt": "x"}', "unknown template key 'prompt'"),
        ('{"example": "Text: {text}"}', "must contain {text} and end with {answer}"),
        ('{"example": "{answer} {text}{answer}"}', "must contain {text} and end with {answer}"),
        ('{"verbalizers": {"0": "x", "1": "x"}}', "two labels share a verbalizer"),
        ('{"verbalizers": {"0": " ", "1": "x"}}', "empty or non-string word"),
        ("{not json", "cannot read the template"),
    ],
)
def test_bad_template_files_are_refused(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(InputError, match="a template is a JSON object") as info:
        prompting.load_template("sa", path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_label_tokens_are_what_the_tokenizer_gives_the_whole_prompt(llama):
    tokenizer, _ = llama
    template = prompting.load_template("tc")
    label_ids = prompting.label_token_ids(tokenizer, template)
    assert [tokenizer.decode(ids) for ids in label_ids] == [" " + w for w in template.verbalizers.values()]
    prompts = [template.render(text) for _, text, _ in TC_TEST[:3]]
    contexts, truncated = prompting.context_ids(tokenizer, prompts, max_length=128, reserve=7)
    assert truncated == 0
    for prompt, context in zip(prompts, contexts, strict=True):
        assert context[0] == tokenizer.bos_token_id
        for label, ids in zip(template.labels, label_ids, strict=True):
            joined = tokenizer(prompt + template.continuation(label), add_special_tokens=False)["input_ids"]
            assert context + ids == [tokenizer.bos_token_id, *joined]


def test_long_prompts_lose_their_start_but_keep_bos(llama):
    tokenizer, _ = llama
    contexts, truncated = prompting.context_ids(
        tokenizer, ["a b c d e f g h i j k l", "a"], max_length=6, reserve=2
    )
    full = tokenizer("a b c d e f g h i j k l", add_special_tokens=False)["input_ids"]
    assert truncated == 1
    assert contexts[0] == [tokenizer.bos_token_id, *full[-3:]]
    assert contexts[1] == [tokenizer.bos_token_id, *tokenizer("a", add_special_tokens=False)["input_ids"]]
    with pytest.raises(UsageError, match="--max-length 3 leaves no room"):
        prompting.context_ids(tokenizer, ["a"], max_length=3, reserve=2)


# --------------------------------------------------------------------------------------------------
# Exact scoring


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_batched_scores_equal_one_forward_per_example_and_label(tiny_llama, attention):
    source = models.resolve_model(str(tiny_llama))
    tokenizer = models.load_tokenizer(source)
    model = models.load_model(source, attn_implementation=attention)
    template = prompting.load_template("tc")
    label_ids = prompting.label_token_ids(tokenizer, template)
    label_ids.append(label_ids[0][:1])  # a one-token continuation as well
    shots = _examples(TC_TRAIN)[:2]
    prompts = [template.render(text, shots if i % 2 else ()) for i, (_, text, _) in enumerate(TC_TEST)]
    contexts, _ = prompting.context_ids(tokenizer, prompts, max_length=128, reserve=8)
    assert len({len(c) for c in contexts}) > 3  # batches really are padded
    expected = naive_scores(model, contexts, label_ids)
    for batch_size in (1, 3, 16):
        scores = prompting.score_continuations(
            model, contexts, label_ids, batch_size=batch_size, pad_id=tokenizer.pad_token_id
        )
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


def test_single_token_labels_and_mean_scores(llama):
    tokenizer, model = llama
    contexts = [[1, 50, 60, 70], [1, 80]]
    expected = naive_scores(model, contexts, [[5], [9]])
    np.testing.assert_allclose(
        prompting.score_continuations(model, contexts, [[5], [9]]), expected, atol=1e-5
    )

    template = prompting.load_template("tc")
    examples = _examples(TC_TEST)
    summed = prompting.classify_by_prompt(model, tokenizer, template, examples, score="sum", max_length=128)
    mean = prompting.classify_by_prompt(model, tokenizer, template, examples, score="mean", max_length=128)
    lengths = np.array([len(ids) for ids in prompting.label_token_ids(tokenizer, template)])
    assert mean.label_tokens == summed.label_tokens == lengths.tolist()
    np.testing.assert_allclose(mean.scores, summed.scores / lengths[None, :], rtol=1e-12)
    labels = template.labels
    assert summed.predictions == [labels[i] for i in summed.scores.argmax(1)]
    assert mean.predictions == [labels[i] for i in mean.scores.argmax(1)]


# --------------------------------------------------------------------------------------------------
# Shots


def test_shots_are_deterministic_per_seed_and_query_and_never_the_query():
    labels = prompting.load_template("tc").labels
    pool = _examples(TC_TRAIN)
    query = Example("t1", TC_TRAIN[0][1], "sports")  # the query is in the pool (evaluating on train)
    twin = Example("other-id", TC_TRAIN[2][1], "politics")  # same text as t3 under another id
    for seed in range(20):
        for q in (query, twin):
            shots = prompting.select_shots(pool, q, 5, seed=seed, labels=labels)
            assert len(shots) == 5 and len({s.id for s in shots}) == 5
            assert all(s.id != q.id and s.text != q.text for s in shots)
    first = [prompting.select_shots(pool, query, 3, seed=7, labels=labels) for _ in range(2)]
    assert first[0] == first[1]
    by_seed = {
        tuple(s.id for s in prompting.select_shots(pool, query, 3, seed=seed, labels=labels))
        for seed in range(10)
    }
    assert len(by_seed) > 1  # the seed does change the draw
    # A query's shots do not depend on the other queries (drawn per query id).
    assert prompting.select_shots(pool, query, 3, seed=7, labels=labels) == first[0]
    with pytest.raises(
        InputError, match="--shots 7 needs 7 train examples other than the query, the train split has 6"
    ):
        prompting.select_shots(pool, query, 7, seed=1, labels=labels)


def test_shots_are_balanced_over_labels_where_possible():
    labels = ["0", "1"]
    pool = [Example(f"p{i}", f"pos {i}", "1") for i in range(5)] + [Example("n0", "neg", "0")]
    query = Example("q", "query", "1")
    for seed in range(10):
        shots = prompting.select_shots(pool, query, 4, seed=seed, labels=labels)
        assert sorted(s.label for s in shots) == ["0", "1", "1", "1"]  # the one negative, then positives
    pool = [Example(f"p{i}", f"pos {i}", "1") for i in range(3)] + [
        Example(f"n{i}", f"neg {i}", "0") for i in range(3)
    ]
    orders = set()
    for seed in range(10):
        shots = prompting.select_shots(pool, query, 4, seed=seed, labels=labels)
        assert sorted(s.label for s in shots) == ["0", "0", "1", "1"]
        orders.add(tuple(s.label for s in shots))
    assert len(orders) > 1  # shuffled: the labels do not come in a fixed pattern
    assert prompting.select_shots(pool, query, 0, seed=1, labels=labels) == []


# --------------------------------------------------------------------------------------------------
# Metrics and the evaluate core


def test_metrics_are_scikit_learns_and_match_a_hand_computation():
    from sklearn.metrics import accuracy_score, f1_score

    gold, predicted = ["a", "a", "b", "c"], ["a", "b", "b", "a"]
    metrics = classification_metrics(gold, predicted)
    # a: P 1/2 R 1/2 F 1/2; b: P 1/2 R 1 F 2/3; c: F 0 -> macro (1/2 + 2/3) / 3
    assert metrics["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 3, abs=1e-12)
    assert metrics["accuracy"] == 0.5
    assert metrics["macro_f1"] == f1_score(gold, predicted, average="macro")
    assert metrics["accuracy"] == accuracy_score(gold, predicted)


def test_evaluate_prompt_zero_shot_records_and_predictions(tiny_llama, tc_data, tmp_path, llama):
    from sklearn.metrics import accuracy_score, f1_score

    tokenizer, model = llama
    predictions = tmp_path / "pred.jsonl"
    records = prompt_records(
        task="tc",
        model=str(tiny_llama),
        data=tc_data,
        predictions=str(predictions),
        batch_size=3,
        lang="ro",
    )
    rows = list(read_records(predictions))
    assert [r["id"] for r in rows] == [i for i, _, _ in TC_TEST]
    assert [r["label"] for r in rows] == [label for _, _, label in TC_TEST]
    template = prompting.load_template("tc")
    # Scores in the file are the independent loop's, and the prediction is their argmax.
    prompts = [template.render(text) for _, text, _ in TC_TEST]
    contexts, _ = prompting.context_ids(tokenizer, prompts, max_length=128, reserve=7)
    expected = naive_scores(model, contexts, prompting.label_token_ids(tokenizer, template))
    got = np.array([[r["scores"][label] for label in template.labels] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["prediction"] for r in rows] == [template.labels[i] for i in expected.argmax(1)]
    assert all(r["shots"] == [] for r in rows)

    gold, predicted = [r["label"] for r in rows], [r["prediction"] for r in rows]
    by_metric = {r["metric"]: r for r in records}
    assert set(by_metric) == {"macro_f1", "accuracy"}
    assert by_metric["macro_f1"]["value"] == pytest.approx(
        f1_score(gold, predicted, average="macro"), abs=1e-12
    )
    assert by_metric["accuracy"]["value"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-12)
    record = by_metric["macro_f1"]
    assert record["method"] == "prompt" and record["task_method"] == "prompt-0shot"
    assert (
        record["task"] == "tc"
        and record["n"] == 7
        and record["lang"] == "ron_Latn"
        and record["seed"] is None
    )
    assert record["adapter"] is None and record["split"] == "test" and record["model"] == str(tiny_llama)
    assert record["settings"] == {
        "shots": 0,
        "seed": 1,
        "template": "default",
        "template_hash": template.digest,
        "score": "sum",
        "answer": "score",
        "max_new_tokens": None,
        "decoding": None,
        "paper_compat": False,
        "max_length": 128,
        "model_revision": None,
    }
    assert record["details"]["labels"] == template.labels and record["details"]["truncated"] == 0


def test_evaluate_prompt_k_shot_uses_train_shots_deterministically(tiny_llama, tmp_path):
    folder = tmp_path / "sa"
    _write_split(folder, "train", SA_TRAIN_MORE, suffix=".jsonl")
    _write_split(folder, "test", SA_TEST, suffix=".jsonl.gz")
    outputs = []
    for run in range(2):
        pred = tmp_path / f"p{run}.jsonl"
        records = prompt_records(
            task="sa",
            model=str(tiny_llama),
            data=folder,
            shots=2,
            seed=5,
            predictions=str(pred),
            score="mean",
        )
        outputs.append(list(read_records(pred)))
    assert outputs[0] == outputs[1]
    train = _examples(SA_TRAIN_MORE)
    for row, (i, text, label) in zip(outputs[0], SA_TEST, strict=True):
        query = Example(i, text, str(label))
        assert row["shots"] == [
            s.id for s in prompting.select_shots(train, query, 2, seed=5, labels=["0", "1"])
        ]
        assert row["label"] == str(label)
    record = records[0]
    assert record["task_method"] == "prompt-2shot" and record["seed"] == 5
    assert record["settings"]["shots"] == 2 and record["settings"]["score"] == "mean"


# --------------------------------------------------------------------------------------------------
# Language adapters on the LM


@pytest.fixture(scope="module")
def inv_adapter(tiny_llama, tmp_path_factory):
    source = models.resolve_model(str(tiny_llama))
    model = models.load_model(source)
    models.add_adapter(model, "ron", "seq_bn_inv")
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:  # the adapter starts near identity: make it visibly change the scores
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    models.save_adapter(model, "ron", out)
    return out


def test_adapter_changes_scores_exactly_and_deactivated_equals_base(tiny_llama, inv_adapter, llama):
    tokenizer, base = llama
    source = models.resolve_model(str(tiny_llama))
    model = models.load_model(source)
    name = models.load_adapter(model, inv_adapter)
    inv = model.base_model.invertible_adapters[name]
    directions = []
    inv.register_forward_pre_hook(lambda m, a, kw: directions.append(kw.get("rev", False)), with_kwargs=True)
    template = prompting.load_template("tc")
    label_ids = prompting.label_token_ids(tokenizer, template)
    prompts = [template.render(text) for _, text, _ in TC_TEST]
    contexts, _ = prompting.context_ids(tokenizer, prompts, max_length=128, reserve=7)

    adapted = prompting.score_continuations(model, contexts, label_ids, batch_size=4)
    assert directions == [False, True] * 2  # two batches: the adapter and its inverse both ran
    np.testing.assert_allclose(adapted, naive_scores(model, contexts, label_ids), atol=1e-5)
    base_scores = prompting.score_continuations(base, contexts, label_ids, batch_size=4)
    assert np.abs(adapted - base_scores).max() > 1e-2
    model.set_active_adapters(None)
    np.testing.assert_allclose(
        prompting.score_continuations(model, contexts, label_ids, batch_size=4),
        base_scores,
        rtol=0,
        atol=1e-6,
    )


def test_evaluate_prompt_with_adapter_records_its_method(tiny_llama, inv_adapter, tc_data, tmp_path):
    plain, adapted = tmp_path / "plain.jsonl", tmp_path / "adapted.jsonl"
    prompt_records(task="tc", model=str(tiny_llama), data=tc_data, predictions=str(plain))
    records = prompt_records(
        task="tc", model=str(tiny_llama), data=tc_data, adapter=str(inv_adapter), predictions=str(adapted)
    )
    assert records[0]["method"] == "seq_bn_inv" and records[0]["task_method"] == "prompt-0shot"
    assert records[0]["adapter"] == str(inv_adapter)
    a = [r["scores"]["travel"] for r in read_records(plain)]
    b = [r["scores"]["travel"] for r in read_records(adapted)]
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) > 1e-2


# --------------------------------------------------------------------------------------------------
# Refusals


def test_bad_inputs_are_refused_with_one_clear_error(tiny_llama, tiny_xlmr, tc_data, tmp_path):
    def run(**kwargs):
        options = dict(task="tc", model=str(tiny_llama), data=tc_data)
        options.update(kwargs)
        return prompt_records(**options)

    with pytest.raises(
        LrlError, match="prompting supports the classification tasks tc, sa, not 'ner'"
    ) as info:
        run(task="ner")
    assert info.value.exit_code == 1
    with pytest.raises(
        ModelError, match=r"needs a causal \(decoder\) language model; '.*' is an encoder \(xlm-roberta\)"
    ):
        run(model=str(tiny_xlmr))
    with pytest.raises(InputError, match="--shots 8 is more than the 7 examples of the train split"):
        run(shots=8)
    no_train = tmp_path / "no-train"
    _write_split(no_train, "test", TC_TEST)
    with pytest.raises(
        InputError, match="--shots 1 draws examples from the train split, and the data folder has none"
    ):
        run(data=no_train, shots=1)
    assert run(data=no_train)[0]["n"] == 7  # zero-shot needs no train split
    with pytest.raises(InputError, match="no validation split in the data folder"):
        run(split="validation")
    with pytest.raises(InputError, match="--data is not a folder"):
        run(data=tmp_path / "missing")
    bad = tmp_path / "bad"
    _write_split(bad, "test", [*TC_TEST[:2], ("x", "Text.", "weather")], suffix=".jsonl")
    with pytest.raises(InputError, match=r"test.jsonl:3: label 'weather' is not one of the task's labels"):
        run(data=bad)
    with pytest.raises(UsageError, match="unknown --score 'max'"):
        run(score="max")
    pred = tmp_path / "pred.jsonl"
    with pytest.raises(ModelError):
        run(model=str(tiny_xlmr), predictions=str(pred))
    assert not pred.exists()


# --- the command: lrltool eval --task tc|sa --prompt -------------------------------------------------


def test_eval_prompt_command_writes_the_same_records_as_the_core(cli, tiny_llama, tc_data, tmp_path):
    out = tmp_path / "m.jsonl"
    preds = tmp_path / "p.jsonl"
    args = ["eval", "--task", "tc", "--prompt", "-m", tiny_llama, "--data", tc_data, "--shots", "2"]
    result = cli([*args, "--seed", "3", "--lang", "ro", "--predictions", preds, "-o", out])
    assert result.exit_code == 0, result.stderr
    records = list(read_records(out))
    core = prompt_records(task="tc", model=str(tiny_llama), data=tc_data, shots=2, seed=3, lang="ro")
    assert [(r["metric"], r["value"]) for r in records] == [(r["metric"], r["value"]) for r in core]
    assert {r["task_method"] for r in records} == {"prompt-2shot"}
    assert {(r["method"], r["lang"], r["seed"], r["n"]) for r in records} == {("prompt", "ron_Latn", 3, 7)}
    from sklearn.metrics import f1_score

    rows = list(read_records(preds))
    gold, predicted = [r["label"] for r in rows], [r["prediction"] for r in rows]
    expected = f1_score(gold, predicted, average="macro", labels=sorted(set(gold) | set(predicted)))
    assert records[0]["metric"] == "macro_f1" and records[0]["value"] == pytest.approx(expected, abs=1e-12)
    assert result.stderr.splitlines()[-1].startswith("eval tc --prompt: 7 in, 2 out; macro_f1 ")


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--task", "ner"], 1, "error: prompting supports the classification tasks tc, sa, not 'ner'"),
        (["--task", "tc", "--shots", "50"], 1, "is more than the 7 examples of the train split"),
        (["--task", "tc", "--variant", "original"], 2, "error: --variant does not apply to --task tc"),
    ],
)
def test_eval_prompt_bad_input_is_one_line(cli, tiny_llama, tc_data, tmp_path, extra, code, message):
    out = tmp_path / "m.jsonl"
    result = cli(["eval", "--prompt", "-m", tiny_llama, "--data", tc_data, *extra, "-o", out])
    assert result.exit_code == code
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_eval_prompt_refuses_an_encoder(cli, tiny_xlmr, tc_data, tmp_path):
    out = tmp_path / "m.jsonl"
    result = cli(["eval", "--task", "tc", "--prompt", "-m", tiny_xlmr, "--data", tc_data, "-o", out])
    assert result.exit_code == 1
    assert "prompting needs a causal (decoder) language model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_the_adapter_is_moved_with_the_model_to_the_requested_device_and_dtype(
    tiny_llama, inv_adapter, monkeypatch
):
    """A device move recorded by a test double: "meta" stands for CUDA (the adapter is made on the CPU)."""
    monkeypatch.setattr(prompting, "resolve_device", lambda name: torch.device("meta"))
    loaded = prompting._load_lm(
        str(tiny_llama),
        revision=None,
        adapter=str(inv_adapter),
        device="cuda",
        dtype="bfloat16",
        max_length=None,
    )
    tensors = [*loaded.model.named_parameters(), *loaded.model.named_buffers()]
    assert any("invertible_adapters" in name for name, _ in tensors)
    assert [name for name, t in tensors if t.device.type != "meta"] == []
    assert [name for name, t in tensors if t.is_floating_point() and t.dtype != torch.bfloat16] == []


def test_eval_prompt_with_an_adapter_in_bfloat16_on_cpu(cli, tiny_llama, inv_adapter, tc_data, tmp_path):
    """The issue's case: "mat1 and mat2 must have the same dtype"."""
    out, preds = tmp_path / "m.jsonl", tmp_path / "p.jsonl"
    args = [
        "eval",
        "--task",
        "tc",
        "--prompt",
        "-m",
        tiny_llama,
        "--data",
        tc_data,
        "--adapter",
        inv_adapter,
        "-o",
        out,
    ]
    result = cli([*args, "--dtype", "bfloat16", "--predictions", preds])
    assert result.exit_code == 0, result.stderr
    full = tmp_path / "full.jsonl"
    prompt_records(
        task="tc", model=str(tiny_llama), data=tc_data, adapter=str(inv_adapter), predictions=str(full)
    )
    a = [r["scores"]["travel"] for r in read_records(full)]
    b = [r["scores"]["travel"] for r in read_records(preds)]
    assert len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.5
