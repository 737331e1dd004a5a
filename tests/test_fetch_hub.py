"""Without --input, fetch downloads exactly the files its reader reads: which repo, files, revision.

``huggingface_hub.snapshot_download`` is replaced by a recorder that answers with a folder in the
published layout; the patterns it receives are matched with huggingface_hub's own filter against
plausible repository listings. The offline cases run the real huggingface_hub code against an empty
cache (HF_HUB_OFFLINE=1, no network).
"""

from __future__ import annotations

import json
import shutil

import huggingface_hub
import pytest
from fetch_helpers import assert_error, assert_no_output, jsonl
from huggingface_hub.utils import filter_repo_objects

from lrltool.sources import conceptnet, hub
from lrltool.streams import read_records
from tests.paths import EXAMPLES


class FakeHub:
    """Records each snapshot_download call and returns a folder holding the published files."""

    def __init__(self, folder):
        self.folder = folder
        self.calls = []

    def __call__(self, repo_id, **kwargs):
        self.calls.append({"repo_id": repo_id, **kwargs})
        return str(self.folder)


def selected(patterns, listing):
    return sorted(filter_repo_objects(listing, allow_patterns=patterns))


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    def install(folder):
        fake = FakeHub(folder)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        return fake

    return install


def test_glotcc_downloads_one_language_folder(cli, fake_hub):
    fake = fake_hub(EXAMPLES / "glotcc")
    result = cli(["fetch", "glotcc", "-l", "ron"])
    assert result.exit_code == 0, result.stderr
    assert len(jsonl(result.stdout)) == 200
    [call] = fake.calls
    assert call == {
        "repo_id": "cis-lmu/GlotCC-V1",
        "repo_type": "dataset",
        "revision": None,
        "allow_patterns": ["v1.0/ron-Latn/*.parquet"],
    }
    listing = [
        "README.md",
        "v1.0/ron-Latn/ron-Latn_0.parquet",
        "v1.0/ron-Latn/ron-Latn_1.parquet",
        "v1.0/rup-Latn/rup-Latn_0.parquet",
        "v1.0/ron-Cyrl/ron-Cyrl_0.parquet",
    ]
    assert selected(call["allow_patterns"], listing) == [
        "v1.0/ron-Latn/ron-Latn_0.parquet",
        "v1.0/ron-Latn/ron-Latn_1.parquet",
    ]


def _sib200_main(root, code="ron_Latn"):
    """Davlan/sib200 as its main branch publishes it: data/<code>/{train,dev,test}.tsv."""
    for name in ("train", "dev", "test"):
        folder = root / "data" / code
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.tsv").write_text(f"index_id\tcategory\ttext\n7\ttravel\t{name}.\n")
    return root


def test_sib200_downloads_the_main_branch_tsvs(cli, fake_hub, tmp_path):
    fake = fake_hub(_sib200_main(tmp_path / "repo"))
    out = tmp_path / "out"
    result = cli(["fetch", "sib200", "-l", "ro", "-o", out, "-q"])
    assert result.exit_code == 0, result.stderr
    assert list(read_records(out / "validation.jsonl.zst")) == [
        {"id": "7", "text": "dev.", "label": "travel"}
    ]
    [call] = fake.calls
    assert call["repo_id"] == "Davlan/sib200" and call["revision"] is None
    main = [
        f"data/{code}/{name}.tsv" for code in ("ron_Latn", "rus_Cyrl") for name in ("train", "dev", "test")
    ]
    assert selected(call["allow_patterns"], ["README.md", *main]) == [
        "data/ron_Latn/dev.tsv",
        "data/ron_Latn/test.tsv",
        "data/ron_Latn/train.tsv",
    ]


def test_sib200_reads_the_parquet_export_at_any_revision(cli, fake_hub, tmp_path):
    from fetch_helpers import write_parquet

    for split in ("train", "validation", "test"):
        write_parquet(
            tmp_path / "ron_Latn" / split / "0000.parquet",
            {"index_id": [1], "text": [f"{split}."], "category": ["travel"]},
        )
    fake = fake_hub(tmp_path)
    out = tmp_path / "out"
    result = cli(["fetch", "sib200", "-l", "ro", "-o", out, "--revision", "refs/convert/parquet"])
    assert result.exit_code == 0, result.stderr
    assert list(read_records(out / "validation.jsonl.zst")) == [
        {"id": "1", "text": "validation.", "label": "travel"}
    ]
    [call] = fake.calls
    assert call["repo_id"] == "Davlan/sib200"
    assert call["revision"] == "refs/convert/parquet"
    listing = [
        f"{code}/{split}/0000.parquet"
        for code in ("ron_Latn", "rus_Cyrl")
        for split in ("train", "validation", "test")
    ]
    assert selected(call["allow_patterns"], listing) == [
        "ron_Latn/test/0000.parquet",
        "ron_Latn/train/0000.parquet",
        "ron_Latn/validation/0000.parquet",
    ]


def test_sib200_main_layout_from_the_repository_root(cli, tmp_path):
    # `hf download Davlan/sib200 --repo-type dataset --local-dir X`, then --input X
    root = _sib200_main(tmp_path / "X")
    _sib200_main(root, "fao_Latn")
    result = cli(["fetch", "sib200", "-l", "fao", "-i", root, "--split", "test"])
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == [{"id": "7", "text": "test.", "label": "travel"}]


def test_revision_option_reaches_the_download(cli, fake_hub):
    fake = fake_hub(EXAMPLES / "glotcc")
    cli(["fetch", "glotcc", "-l", "ron", "--revision", "0123456789abcdef0123456789abcdef01234567"])
    assert fake.calls[0]["revision"] == "0123456789abcdef0123456789abcdef01234567"


def test_wikiann_downloads_one_language_and_only_the_split_asked_for(cli, fake_hub):
    fake = fake_hub(EXAMPLES / "wikiann")
    result = cli(["fetch", "wikiann", "-l", "ron", "--split", "test"])
    assert len(jsonl(result.stdout)) == 60
    [call] = fake.calls
    assert call["repo_id"] == "unimelb-nlp/wikiann" and call["revision"] is None
    listing = [
        f"{lang}/{split}-00000-of-00001.parquet" for lang in ("ro", "roa-rup") for split in ("train", "test")
    ]
    assert selected(call["allow_patterns"], listing) == ["ro/test-00000-of-00001.parquet"]


def test_sentiment_downloads_the_three_csvs_of_its_repository(cli, fake_hub, tmp_path):
    fake = fake_hub(EXAMPLES / "sentiment" / "romanian_sa")
    result = cli(["fetch", "sentiment", "-l", "ron", "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.stderr
    [call] = fake.calls
    assert call["repo_id"] == "DGurgurov/romanian_sa"
    assert selected(call["allow_patterns"], ["README.md", "train.csv", "dev.csv", "test.csv"]) == [
        "dev.csv",
        "test.csv",
        "train.csv",
    ]


def test_flores_plus_asks_for_the_split_file_in_either_format(cli, fake_hub, tmp_path):
    lines = (EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest").read_text(encoding="utf-8").splitlines()
    (tmp_path / "repo" / "devtest").mkdir(parents=True)
    (tmp_path / "repo" / "devtest" / "ron_Latn.jsonl").write_text(
        "".join(json.dumps({"id": n, "text": text}) + "\n" for n, text in enumerate(lines, 1))
    )  # FLORES+ as its newer revisions publish it
    fake = fake_hub(tmp_path / "repo")
    result = cli(["fetch", "flores", "-l", "ron"])
    assert len(jsonl(result.stdout)) == 204
    [call] = fake.calls
    assert call["repo_id"] == "openlanguagedata/flores_plus"
    listing = [
        "devtest/ron_Latn.parquet",
        "devtest/ron_Latn.jsonl",
        "dev/ron_Latn.parquet",
        "devtest/rus_Cyrl.parquet",
    ]
    assert selected(call["allow_patterns"], listing) == ["devtest/ron_Latn.jsonl", "devtest/ron_Latn.parquet"]


def test_gated_and_missing_repositories_are_one_line_errors(cli, monkeypatch):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    def gated(repo_id, **kwargs):
        raise GatedRepoError("401 Client Error: access to this repo is restricted")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    assert_error(
        cli(["fetch", "flores", "-l", "ron"]),
        "openlanguagedata/flores_plus is gated: downloading FLORES+ ron_Latn sentences needs an account that"
        " accepted its terms; open https://huggingface.co/datasets/openlanguagedata/flores_plus logged in and"
        " accept them ('Agree and access repository'), then log in here (hf auth login, or HF_TOKEN)",
    )

    def missing(repo_id, **kwargs):
        raise RepositoryNotFoundError("404 Client Error")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    assert_error(
        cli(["fetch", "sentiment", "-l", "ell", "--split", "test"]),
        "no dataset DGurgurov/greek_sa on the Hugging Face hub (or it is private); check the language's code",
    )


@pytest.fixture
def empty_offline_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "home"))
    return tmp_path


def test_offline_and_not_cached_says_what_to_download(cli, empty_offline_cache):
    out = empty_offline_cache / "out"
    out.mkdir()
    result = cli(["fetch", "glotcc", "-l", "ron", "-o", out / "glotcc.jsonl.zst"])
    assert_error(
        result,
        "HF_HUB_OFFLINE=1 and GlotCC-V1 ron-Latn shards (cis-lmu/GlotCC-V1: v1.0/ron-Latn/*.parquet) are not"
        " in the Hugging Face cache; download them once with internet (same HF_HOME): hf download"
        " cis-lmu/GlotCC-V1 --repo-type dataset --include 'v1.0/ron-Latn/*.parquet' (make LANG=... data"
        " fetches everything); or give --input PATH",
    )
    assert_no_output(out)
    result = cli(["fetch", "sib200", "-l", "ron", "-o", out / "sib"])
    assert_error(
        result,
        "SIB-200 ron_Latn splits (Davlan/sib200: data/ron_Latn/train.tsv, data/annotated/ron_Latn/train.tsv,"
        " ron_Latn/train.tsv, ron_Latn/train/*.parquet, ... (16 patterns)) are not in the Hugging Face cache",
    )
    assert_no_output(out)


def test_under_make_the_hint_names_data_not_input(cli, empty_offline_cache, monkeypatch):
    monkeypatch.setenv("MAKELEVEL", "1")
    result = cli(["fetch", "glotcc", "-l", "ron", "-o", empty_offline_cache / "g.jsonl.zst"])
    assert_error(result, "or set DATA=FOLDER (local copies in the layout of examples/)")
    assert "--input" not in result.stderr


def test_offline_reads_a_cached_snapshot(cli, empty_offline_cache):
    """The real huggingface_hub cache layout: refs/main -> snapshots/<commit>/<files>."""
    commit = "a" * 40
    repo = empty_offline_cache / "hub" / "datasets--cis-lmu--GlotCC-V1"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(EXAMPLES / "glotcc" / "v1.0", repo / "snapshots" / commit / "v1.0")
    result = cli(["fetch", "glotcc", "-l", "ron"])
    assert result.exit_code == 0, result.stderr
    assert len(jsonl(result.stdout)) == 200


def _cache_glotcc(cache, code="ron-Latn"):
    commit = "a" * 40
    repo = cache / "hub" / "datasets--cis-lmu--GlotCC-V1"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(EXAMPLES / "glotcc" / "v1.0" / "ron-Latn", repo / "snapshots" / commit / "v1.0" / code)


@pytest.mark.parametrize("source", ["glotcc", "flores", "sib200", "wikiann", "sentiment"])
def test_quiet_download_path_works(cli, empty_offline_cache, source):
    # -q without --input switches huggingface_hub's progress bars off before downloading (it crashed on
    # `huggingface_hub.utils`, a lazily loaded submodule); here it reaches the (empty) offline cache.
    result = cli(["fetch", source, "-l", "ron", "-q", "-o", empty_offline_cache / "out"])
    assert_error(result, "HF_HUB_OFFLINE=1 and ")


def test_quiet_offline_fetch_from_a_prepared_cache(cli, empty_offline_cache):
    _cache_glotcc(empty_offline_cache)
    result = cli(["fetch", "glotcc", "-l", "ron", "-q"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert len(jsonl(result.stdout)) == 200


def test_offline_with_another_language_cached_says_not_in_the_cache(cli, empty_offline_cache):
    _cache_glotcc(empty_offline_cache)  # ron-Latn only
    assert_error(
        cli(["fetch", "glotcc", "-l", "fao"]),
        "HF_HUB_OFFLINE=1 and GlotCC-V1 fao-Latn shards (cis-lmu/GlotCC-V1: v1.0/fao-Latn/*.parquet) are"
        " not in the Hugging Face cache; download them once with internet (same HF_HOME): hf download",
    )


def test_a_language_folder_the_hub_lacks_is_reported_when_downloading(cli, fake_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fake_hub(EXAMPLES / "glotcc")  # holds v1.0/ron-Latn only
    assert_error(
        cli(["fetch", "glotcc", "-l", "bre"]),
        "cis-lmu/GlotCC-V1 has no GlotCC-V1 bre-Latn shards (no file matches v1.0/bre-Latn/*.parquet); the"
        " source may not have this language",
    )


def test_a_source_without_the_language_names_those_with_it(cli):
    assert_error(
        cli(["fetch", "flores", "-l", "bre"]),
        "FLORES-200 has no Breton (bre_Latn); it is in: conceptnet (br), glotcc (bre-Latn, by its naming"
        " rule), wikiann (br); use a source that has it, or give flores's code with --code if you know one",
    )
    assert_error(
        cli(["fetch", "sentiment", "-l", "fao", "-o", "x"]),
        "the paper's sentiment data sets has no Faroese (fao_Latn); it is in: conceptnet (fo), glotcc",
    )
    assert_error(cli(["fetch", "conceptnet", "-l", "kur"]), "language 'kur' is ambiguous", code=2)


def test_conceptnet_offline_needs_the_cached_dump(cli, empty_offline_cache):
    cached = empty_offline_cache / "home" / "lrltool" / "conceptnet" / conceptnet.DUMP_NAME
    assert_error(
        cli(["fetch", "conceptnet", "-l", "ron"]),
        f"HF_HUB_OFFLINE=1 and the ConceptNet 5.7 assertions dump is not cached at {cached}; download"
        f" {conceptnet.DUMP_URL} to that path, or give --input PATH",
    )
    cached.parent.mkdir(parents=True)
    shutil.copyfile(next((EXAMPLES / "conceptnet").glob("*.csv.gz")), cached)
    result = cli(["fetch", "conceptnet", "-l", "ron"])
    assert result.exit_code == 0 and len(jsonl(result.stdout)) == 396


def test_conceptnet_download_goes_to_the_cache_atomically(monkeypatch, empty_offline_cache):
    from huggingface_hub import constants, file_download

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    payload = next((EXAMPLES / "conceptnet").glob("*.csv.gz")).read_bytes()
    urls = []

    def http_get(url, temp_file, **kwargs):
        urls.append(url)
        temp_file.write(payload)

    monkeypatch.setattr(file_download, "http_get", http_get)
    path = hub.cached_url(conceptnet.DUMP_URL, f"conceptnet/{conceptnet.DUMP_NAME}", what="the dump")
    assert urls == [
        "https://s3.amazonaws.com/conceptnet/downloads/2019/edges/conceptnet-assertions-5.7.0.csv.gz"
    ]
    assert (
        path == empty_offline_cache / "home" / "lrltool" / "conceptnet" / "conceptnet-assertions-5.7.0.csv.gz"
    )
    assert path.read_bytes() == payload
    assert hub.cached_url(conceptnet.DUMP_URL, f"conceptnet/{conceptnet.DUMP_NAME}", what="x") == path
    assert urls == [conceptnet.DUMP_URL]  # the second call used the cache

    def broken(url, temp_file, **kwargs):
        temp_file.write(b"partial")
        raise ConnectionError("connection reset")

    monkeypatch.setattr(file_download, "http_get", broken)
    with pytest.raises(Exception, match="connection reset") as err:
        hub.cached_url("https://example.org/other.csv.gz", "conceptnet/other.csv.gz", what="the other dump")
    assert type(err.value).__name__ == "InputError"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial file left
