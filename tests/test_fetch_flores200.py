"""fetch flores --edition flores200: FLORES-200 from the hub's facebook/flores (the paper's PPPL data).

Offline against a prepared Hugging Face cache (refs/main -> snapshots/<commit>/<files>) holding the
parquet files of config ron_Latn in push_to_hub's layout (the sentences of examples/flores, column
``sentence`` with facebook/flores's other columns); the patterns asked for, matched with
huggingface_hub's own filter against a plausible listing; the missing-data and usage messages.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fetch_helpers import assert_error, assert_no_output, jsonl
from test_fetch_hub import empty_offline_cache, fake_hub, selected  # noqa: F401 (fixtures reused)
from test_pipeline_languages import _plan, lrltool_bin  # noqa: F401 (fixture reused)

from tests.paths import EXAMPLES

LINES = (EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest").read_text(encoding="utf-8").splitlines()


def _facebook_flores_parquet(path, lines):
    n = len(lines)
    table = pa.table({
        "id": list(range(1, n + 1)), "URL": [f"https://en.wikinews.org/{i}" for i in range(n)],
        "domain": ["wikinews"] * n, "topic": ["politics"] * n, "has_image": [0] * n,
        "has_hyperlink": [0] * n, "sentence": lines,
    })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _cache_facebook_flores(cache, files):
    commit = "b" * 40
    repo = cache / "hub" / "datasets--facebook--flores"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for name, lines in files.items():
        _facebook_flores_parquet(repo / "snapshots" / commit / name, lines)


def test_offline_reads_facebook_flores_from_a_prepared_cache(cli, empty_offline_cache):  # noqa: F811
    _cache_facebook_flores(
        empty_offline_cache,
        {"ron_Latn/devtest-00000-of-00002.parquet": LINES[:100],
         "ron_Latn/devtest-00001-of-00002.parquet": LINES[100:],
         "ron_Latn/dev-00000-of-00001.parquet": ["Alta propoziție."]},
    )  # fmt: skip
    result = cli(["fetch", "flores", "-l", "ron", "--edition", "flores200"])
    assert result.exit_code == 0, result.stderr
    records = jsonl(result.stdout)
    assert [r["text"] for r in records] == LINES  # both shards, in order; not the dev split
    assert records[0] == {
        "id": "devtest:1",
        "text": LINES[0],
        "lang": "ron_Latn",
        "source": "flores",
        "meta": {"split": "devtest", "domain": "wikinews", "topic": "politics", "edition": "facebook/flores"},
    }
    dev = cli(["fetch", "flores", "-l", "ron", "--edition", "flores200", "--split", "dev"])
    assert [r["text"] for r in jsonl(dev.stdout)] == ["Alta propoziție."]


def test_offline_without_the_files_prints_the_hf_download_line(cli, empty_offline_cache):  # noqa: F811
    out = empty_offline_cache / "out"
    out.mkdir()
    result = cli(["fetch", "flores", "-l", "ron", "--edition", "flores200", "-o", out / "flores.jsonl.zst"])
    assert_error(
        result,
        "HF_HUB_OFFLINE=1 and FLORES-200 ron_Latn sentences (parquet) (facebook/flores:"
        " ron_Latn/devtest-*.parquet, ron_Latn/devtest/*.parquet, ron_Latn/*-devtest.parquet) are not in the"
        " Hugging Face cache; nor has its parquet export (refs/convert/parquet); download"
        " them once with internet (same HF_HOME): hf download facebook/flores --repo-type dataset --include"
        " 'ron_Latn/devtest-*.parquet' 'ron_Latn/devtest/*.parquet' 'ron_Latn/*-devtest.parquet'"
        " (make LANG=... data fetches everything); or give --input PATH",
    )
    assert_no_output(out)
    _cache_facebook_flores(empty_offline_cache, {"mlt_Latn/devtest-00000-of-00001.parquet": LINES[:3]})
    assert_error(  # another language cached: still "not in the cache"
        cli(["fetch", "flores", "-l", "ron", "--edition", "flores200"]),
        "HF_HUB_OFFLINE=1 and FLORES-200 ron_Latn sentences (parquet) (facebook/flores:",
    )


def test_download_asks_facebook_flores_for_the_languages_parquet_in_any_layout(cli, fake_hub, tmp_path):  # noqa: F811
    _facebook_flores_parquet(tmp_path / "repo" / "ron_Latn" / "devtest" / "0000.parquet", LINES)  # the export
    fake = fake_hub(tmp_path / "repo")
    result = cli(
        ["fetch", "flores", "-l", "ro", "--edition", "flores200", "--revision", "refs/convert/parquet"]
    )
    assert result.exit_code == 0, result.stderr
    assert [r["text"] for r in jsonl(result.stdout)] == LINES
    [call] = fake.calls
    assert (call["repo_id"], call["repo_type"], call["revision"]) == (
        "facebook/flores",
        "dataset",
        "refs/convert/parquet",
    )
    listing = [
        "flores.py",
        "README.md",
        "ron_Latn/devtest-00000-of-00001.parquet",  # push_to_hub
        "ron_Latn/dev-00000-of-00001.parquet",
        "ron_Latn/devtest/0000.parquet",  # the parquet export
        "ron_Latn/flores-devtest.parquet",  # the export's older naming
        "ron_Latn/flores-dev.parquet",
        "eng_Latn-ron_Latn/devtest-00000-of-00001.parquet",  # a pair config: no column 'sentence'
        "rus_Cyrl/devtest-00000-of-00001.parquet",
    ]
    assert selected(call["allow_patterns"], listing) == [
        "ron_Latn/devtest-00000-of-00001.parquet",
        "ron_Latn/devtest/0000.parquet",
        "ron_Latn/flores-devtest.parquet",
    ]
    fake.calls.clear()
    assert cli(["fetch", "flores", "-l", "ro"]).exit_code == 1  # the default edition is still FLORES+
    assert fake.calls[0]["repo_id"] == "openlanguagedata/flores_plus"


def test_online_without_the_files_says_main_and_the_parquet_export_lack_them(
    cli,
    fake_hub,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "flores.py").write_text("# the loading script\n")
    fake = fake_hub(tmp_path / "repo")
    assert_error(
        cli(["fetch", "flores", "-l", "ron", "--edition", "flores200"]),
        "facebook/flores has no FLORES-200 ron_Latn sentences (parquet) (no file matches"
        " ron_Latn/devtest-*.parquet, ron_Latn/devtest/*.parquet, ron_Latn/*-devtest.parquet); nor has its"
        " parquet export (refs/convert/parquet); the source may not have this language",
    )
    assert [call["revision"] for call in fake.calls] == [None, "refs/convert/parquet"]


def test_a_script_only_main_branch_falls_back_to_the_parquet_export(cli, tmp_path, monkeypatch):
    """facebook/flores is a script dataset: its main branch has flores.py and no data; the hub's parquet
    export (refs/convert/parquet, <config>/<split>/0000.parquet) has the sentences."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    main, export = tmp_path / "main", tmp_path / "export"
    main.mkdir()
    (main / "flores.py").write_text("# the loading script\n")
    _facebook_flores_parquet(export / "ron_Latn" / "devtest" / "0000.parquet", LINES)
    calls = []

    def snapshot_download(repo_id, *, revision=None, **kwargs):
        calls.append(revision)
        return str(export if revision == "refs/convert/parquet" else main)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    result = cli(["fetch", "flores", "-l", "ron", "--edition", "flores200"])
    assert result.exit_code == 0, result.stderr
    assert [r["text"] for r in jsonl(result.stdout)] == LINES
    assert calls == [None, "refs/convert/parquet"]
    assert "facebook/flores has no ron_Latn parquet on main; read its parquet export" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["glotcc", "-l", "ron", "--edition", "flores200"],
            "error: --edition applies to flores only, not glotcc",
        ),
        (
            ["flores", "-l", "ron", "--edition", "flores101"],
            "error: unknown --edition 'flores101'; use one of",
        ),
    ],
)
def test_edition_misuse_is_a_usage_error(cli, args, message):
    result = cli(["fetch", *args])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr


def test_local_files_keep_their_own_edition(cli):
    result = cli(["fetch", "flores", "-l", "ron", "-i", EXAMPLES / "flores", "--edition", "flores200", "-q"])
    assert result.exit_code == 0, result.stderr
    assert {r["meta"]["edition"] for r in jsonl(result.stdout)} == {"flores200"}  # the tarball's text files


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_pipeline_fetches_facebook_flores_under_the_paper_preset(lrltool_bin):  # noqa: F811
    paper = _plan(lrltool_bin, "LANG=mlt", "data")
    assert f"{lrltool_bin} fetch flores --lang mlt_Latn  --edition flores200 -o" in paper
    ours = _plan(lrltool_bin, "LANG=mlt", "PRESET=", "data")
    assert "--edition" not in ours and f"{lrltool_bin} fetch flores --lang mlt_Latn" in ours
