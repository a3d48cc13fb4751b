"""Open Bandit Dataset loader: on small files made here, and (slow) on the real sample fetched with pip."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bandits.ope import (
    DatasetDownloadError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    ReplayInputError,
    evaluate,
    fetch_obd,
    load_obd,
    load_obd_frame,
    obd_path,
)
from bandits.ope import obd as obd_module


def write_fake_obd(cache: Path, policy: str, campaign: str, *, n: int = 12, n_items: int = 4) -> pd.DataFrame:
    """A tiny file in the Open Bandit Dataset's layout and columns, rows out of time order."""
    rng = np.random.default_rng(0)
    folder = obd_path(policy, campaign, cache_dir=cache)
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "timestamp": [f"2019-11-24 00:00:{s:02d}.000000+00:00" for s in rng.permutation(n)],
            "item_id": rng.integers(0, n_items, size=n),
            "position": rng.integers(1, 4, size=n),
            "click": rng.integers(0, 2, size=n),
            "propensity_score": np.full(n, 1 / n_items),
            "user_feature_0": rng.choice(["a1", "b2"], size=n),
            "user_feature_1": rng.choice(["c3", "d4", "e5"], size=n),
            **{f"user-item_affinity_{i}": rng.random(n) for i in range(n_items)},
        }
    )
    frame.to_csv(folder / f"{campaign}.csv")
    pd.DataFrame({"item_id": range(n_items), "item_feature_0": rng.normal(size=n_items)}).to_csv(
        folder / "item_context.csv"
    )
    return frame


def test_load_obd_reads_the_dataset_layout(tmp_path: Path) -> None:
    raw = write_fake_obd(tmp_path, "random", "men")
    logged = load_obd("random", "men", cache_dir=tmp_path)
    ordered = raw.sort_values("timestamp").reset_index(drop=True)
    assert np.array_equal(logged.action, ordered["item_id"].to_numpy())
    assert np.array_equal(logged.reward, ordered["click"].to_numpy(float))
    assert logged.n_actions == 4
    assert logged.context_names == (
        "user_feature_0=a1",
        "user_feature_0=b2",
        "user_feature_1=c3",
        "user_feature_1=d4",
        "user_feature_1=e5",
        "position=1",
        "position=2",
        "position=3",
    )
    assert np.array_equal(logged.context[:, :2].sum(axis=1), np.ones(len(raw)))
    assert list(logged.group) == [f"position={p}" for p in ordered["position"]]
    with_affinity = load_obd("random", "men", cache_dir=tmp_path, affinity=True)
    assert with_affinity.context.shape == (len(raw), 8 + 4)
    assert list(load_obd_frame("random", "men", cache_dir=tmp_path)["timestamp"]) == sorted(raw["timestamp"])


def test_load_obd_without_cache_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"not found at .*download=True.*SECTIONRANK_CACHE"):
        load_obd("bts", "all", cache_dir=tmp_path)


def test_obd_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECTIONRANK_CACHE", str(tmp_path))
    assert obd_path("bts", "women") == tmp_path / "obd" / "obp-0.5.7" / "bts" / "women"
    monkeypatch.delenv("SECTIONRANK_CACHE")
    assert (
        obd_path("bts", "women")
        == Path.home() / ".cache" / "sectionrank" / "obd" / "obp-0.5.7" / "bts" / "women"
    )


@pytest.mark.parametrize(
    ("policy", "campaign", "match"),
    [
        ("greedy", "all", r"Expected `policy` in random, bts, found 'greedy'"),
        ("bts", "kids", r"`campaign`.*'kids'"),
    ],
)
def test_load_obd_rejects_unknown_names(policy: str, campaign: str, match: str) -> None:
    with pytest.raises(ReplayInputError, match=match):
        load_obd(policy, campaign)


def test_fetch_obd_reports_pip_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, stdout="", stderr="ERROR: No matching distribution found"
        )

    monkeypatch.setattr(obd_module.subprocess, "run", failing_pip)
    with pytest.raises(DatasetDownloadError, match=r"exited with 1\): ERROR: No matching distribution"):
        load_obd("bts", "all", cache_dir=tmp_path, download=True)


def test_fetch_obd_refuses_an_unexpected_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_pip(command, **kwargs):
        target = Path(command[command.index("-d") + 1])
        (target / "obp-0.5.7.tar.gz").write_bytes(b"not the archive")
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    monkeypatch.setattr(obd_module.subprocess, "run", fake_pip)
    with pytest.raises(DatasetIntegrityError, match=r"Expected obp-0.5.7.tar.gz with SHA-256 3060d67f"):
        fetch_obd(cache_dir=tmp_path)
    assert not (tmp_path / "obp-0.5.7").exists()


@pytest.fixture(scope="session")
def real_obd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("obd-cache")
    try:
        fetch_obd(cache_dir=cache)
    except DatasetDownloadError as exc:
        pytest.skip(f"Open Bandit Dataset not downloadable here (pip could not fetch obp 0.5.7): {exc}")
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_obd_off_policy_estimates_of_uniform_random_agree_with_its_logged_ctr(
    real_obd_cache: Path, campaign: str
) -> None:
    # The uniform random policy's value estimated from the Bernoulli TS logs, against the random policy's own
    # logged CTR: each estimate's 95% interval overlaps the 95% (normal) interval of the logged CTR.
    random_log = load_obd("random", campaign, cache_dir=real_obd_cache)
    bts_log = load_obd("bts", campaign, cache_dir=real_obd_cache)
    n_items = bts_log.n_actions
    assert len(random_log) == len(bts_log) == 10_000
    assert n_items == {"all": 80, "men": 34, "women": 46}[campaign]
    assert np.allclose(random_log.pscore, 1 / n_items)  # the random policy logged uniform propensities
    ctr = random_log.reward.mean()
    half = 1.96 * np.sqrt(ctr * (1 - ctr) / len(random_log))
    uniform = np.full((len(bts_log), n_items), 1 / n_items)
    table = evaluate(bts_log, uniform, estimators=("ips", "snips", "dr"), n_bootstrap=200, seed=0)
    overall = table[table.group == "overall"].set_index("estimator")
    for name in ("ips", "snips", "dr"):
        low, high = overall.loc[name, ["ci_low", "ci_high"]]
        assert low <= ctr + half
        assert high >= ctr - half
        assert 0 < overall.loc[name, "value"] < 0.05
    assert overall.loc["ips", "ess"] < len(bts_log) / 10  # Thompson sampling is far from uniform


def place(tmp_path: Path, layout: str) -> Path:
    """The fake sample of bts/men placed as `layout`; returns the path a user would point at."""
    made = tmp_path / "made"
    write_fake_obd(made, "bts", "men")
    source = obd_path("bts", "men", cache_dir=made)
    if layout == "cache root":
        return made
    if layout == "data root":
        return made / "obp-0.5.7"
    if layout == "campaign folder":
        return source
    targets = {
        "obp's open_bandit_dataset": "user/open_bandit_dataset/bts/men",
        "extracted sdist": "user/obp-0.5.7/obp/dataset/obd/bts/men",
    }
    if layout in targets:
        target = tmp_path / targets[layout]
        target.parent.mkdir(parents=True)
        source.rename(target)
        return tmp_path / "user"
    archive = tmp_path / "pip" / "obp-0.5.7.tar.gz"  # what `pip download obp==0.5.7 -d pip` leaves
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="obp-0.5.7/obp/dataset/obd/bts/men")
    return archive if layout == "sdist archive" else archive.parent


LAYOUTS = [
    "cache root",
    "data root",
    "campaign folder",
    "obp's open_bandit_dataset",
    "extracted sdist",
    "sdist archive",
    "folder holding the sdist",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_load_obd_reads_any_layout_it_is_pointed_at(tmp_path: Path, layout: str) -> None:
    expected = write_fake_obd(tmp_path / "reference", "bts", "men")
    logged = load_obd("bts", "men", path=place(tmp_path, layout))
    ordered = expected.sort_values("timestamp").reset_index(drop=True)
    np.testing.assert_array_equal(logged.action, ordered["item_id"])
    np.testing.assert_array_equal(logged.reward, ordered["click"])
    assert logged.n_actions == 4
    raw = load_obd_frame("bts", "men", path=place(tmp_path / "again", layout))
    pd.testing.assert_frame_equal(raw, ordered)


def test_locate_obd_names_the_places_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"bts/women not found under .* looked for women.csv"):
        load_obd("bts", "women", path=place(tmp_path, "cache root"))
