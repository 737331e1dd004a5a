"""Downloads for ``fetch`` without ``--input``: exactly the files the local reader reads, into the HF cache.

``snapshot`` downloads the files of a hub dataset repository that match a few patterns (one language of
GlotCC, one split folder of SIB-200, ...) with ``huggingface_hub.snapshot_download`` and returns the
snapshot folder, which the source then searches exactly as it searches a ``--input`` folder. ``cached_url``
does the same for a file published outside the hub (the ConceptNet dump) under ``$HF_HOME/lrltool/``.

``HF_HUB_OFFLINE=1`` is honoured: cached files are used, and a miss is one line saying what to download
and where. Hub errors (gated, missing repository or revision, no network) become :class:`InputError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lrltool.errors import InputError


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def snapshot(
    repo_id: str,
    patterns: list[str],
    *,
    revision: str | None = None,
    what: str,
) -> Path:
    """Download the files of dataset ``repo_id`` matching ``patterns`` (at ``revision``); their folder.

    ``what`` names the data in errors (e.g. "GlotCC-V1 ron-Latn shards").
    """
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from lrltool import ui

    if ui.quiet():
        # huggingface_hub loads its submodules lazily: `huggingface_hub.utils` is no attribute until imported.
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    url = f"https://huggingface.co/datasets/{repo_id}"
    at = f" at revision {revision}" if revision else ""
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=patterns,
        )
    except GatedRepoError:
        raise InputError(
            f"{repo_id} is gated: downloading {what} needs an account that accepted its terms",
            hint=f"open {url} logged in and accept them ('Agree and access repository'), then log in here"
            f" (hf auth login, or HF_TOKEN) and run it again; {_input_hint()}",
        ) from None
    except RepositoryNotFoundError:
        raise InputError(
            f"no dataset {repo_id} on the Hugging Face hub (or it is private)",
            hint="check the language's code for this source (--code), or give --input PATH",
        ) from None
    except RevisionNotFoundError:
        raise InputError(
            f"dataset {repo_id} has no revision {revision!r}",
            hint="check --revision",
        ) from None
    except LocalEntryNotFoundError:
        if offline():
            raise _not_cached(repo_id, at, patterns, what) from None
        raise InputError(
            f"cannot reach the Hugging Face hub to download {what} from {repo_id}, and they are not cached",
            hint=f"check the network (or HF_ENDPOINT); on a machine with internet:"
            f" {download_line(repo_id, patterns, revision)}; {_input_hint()}",
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise InputError(
            f"downloading {what} from {repo_id} failed ({type(exc).__name__}: {exc})",
            hint="try again, or give --input PATH",
        ) from None
    if not _has_match(Path(folder), patterns):
        # Offline, the cached snapshot of another language answers without error; online, the repository
        # has no such files (GlotCC publishes no list: a missing language folder shows here).
        if offline():
            raise _not_cached(repo_id, at, patterns, what)
        raise InputError(
            f"{repo_id}{at} has no {what} (no file matches {_listed(patterns)})",
            hint="the source may not have this language: see 'lrltool languages CODE', or give --input PATH",
        )
    return Path(folder)


def _listed(patterns: list[str]) -> str:
    return ", ".join(patterns[:4]) + (f", ... ({len(patterns)} patterns)" if len(patterns) > 4 else "")


def download_line(repo_id: str, patterns: list[str], revision: str | None = None) -> str:
    """The ``hf download`` command that puts these files into the Hugging Face cache."""
    import shlex

    line = f"hf download {repo_id} --repo-type dataset --include {' '.join(shlex.quote(p) for p in patterns)}"
    return line + (f" --revision {shlex.quote(revision)}" if revision else "")


def _input_hint() -> str:
    """How to give local copies instead: DATA= under make (its recipes pass --input), else --input."""
    if os.environ.get("MAKELEVEL"):
        return "or set DATA=FOLDER (local copies in the layout of examples/)"
    return "or give --input PATH"


def _not_cached(repo_id: str, at: str, patterns: list[str], what: str) -> InputError:
    revision = at.removeprefix(" at revision ") or None
    return InputError(
        f"HF_HUB_OFFLINE=1 and {what} ({repo_id}{at}: {_listed(patterns)}) are not in the Hugging Face cache",
        hint=f"download them once with internet (same HF_HOME): {download_line(repo_id, patterns, revision)}"
        f" (make LANG=... data fetches everything); {_input_hint()}",
    )


def _has_match(folder: Path, patterns: list[str]) -> bool:
    """Whether a file under ``folder`` matches one of the download patterns (huggingface_hub's own filter)."""
    from huggingface_hub.utils import filter_repo_objects

    files = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return next(iter(filter_repo_objects(files, allow_patterns=patterns)), None) is not None


def lrltool_cache() -> Path:
    """``$HF_HOME/lrltool``: where files published outside the hub are cached."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "lrltool"


def cached_url(url: str, relative: str, *, what: str) -> Path:
    """The file at ``url``, downloaded once to ``$HF_HOME/lrltool/<relative>`` (atomically)."""
    target = lrltool_cache() / relative
    if target.is_file():
        return target
    if offline():
        raise InputError(
            f"HF_HUB_OFFLINE=1 and {what} is not cached at {target}",
            hint=f"download {url} to that path, or give --input PATH",
        )
    from huggingface_hub.file_download import http_get

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".incomplete")
    try:
        with open(partial, "wb") as out:
            http_get(url, out, displayed_filename=target.name)
    except BaseException as exc:  # network errors come in many types; none may leave a file behind
        partial.unlink(missing_ok=True)
        if not isinstance(exc, Exception):
            raise
        raise InputError(
            f"downloading {what} from {url} failed ({type(exc).__name__}: {exc})",
            hint=f"check the network, or download it yourself to {target} (or give --input PATH)",
        ) from None
    os.replace(partial, target)
    return target
