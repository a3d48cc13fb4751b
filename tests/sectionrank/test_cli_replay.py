"""`sectionrank replay` on files: DSJSON against the same data as CSV, the whole-distribution path against the
Python API, every table format, row order, the Open Bandit Dataset's layouts, and one-line errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from bandits.ope import evaluate, from_frame, load_obd
from sectionrank.cli import main
from tests.bandits.ope.test_obd import place

N_ACTIONS = 4


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def replay_rows(*args) -> list[dict]:
    """Run replay with --out and return its rows."""
    out = Path(args[args.index("--log") + 1] if "--log" in args else args[args.index("--obd-dir") + 1])
    out = out.parent / f"out-{abs(hash(args))}.json"
    result = run("replay", *args, "--out", out)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["rows"]


def values(rows: list[dict]) -> dict[tuple[str, str, str], float]:
    return {(r["policy"], r["group"], r["estimator"]): r["value"] for r in rows}


def logged_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Logged decisions of a context-dependent logging policy, with a target distribution t0..t3."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.integers(0, 3, size=n)
    logits = np.column_stack([x1 * k for k in range(N_ACTIONS)])
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True) * 0.8 + 0.2 / N_ACTIONS
    action = (rng.random(n)[:, None] > np.cumsum(mu, axis=1)).sum(axis=1).clip(max=N_ACTIONS - 1)
    reward = (rng.random(n) < 0.2 + 0.1 * action + 0.1 * (x1 > 0)).astype(float)
    target = rng.dirichlet(np.ones(N_ACTIONS), size=n)
    frame = pd.DataFrame(
        {
            "event": [f"ev-{i:04d}" for i in range(n)],
            "x1": x1,
            "x2": x2,
            "action": action,
            "reward": reward,
            "pscore": mu[np.arange(n), action],
        }
    )
    for a in range(N_ACTIONS):
        frame[f"t{a}"] = target[:, a]
    return frame


def to_dsjson(frame: pd.DataFrame) -> list[bytes]:
    """The same decisions as DSJSON events; the chosen action is listed first in `a` on odd rows only."""
    lines = []
    for i, row in enumerate(frame.itertuples()):
        chosen = int(row.action) + 1
        rest = [a for a in range(1, N_ACTIONS + 1) if a != chosen]
        order = [chosen, *rest] if i % 2 else [*rest[:1], chosen, *rest[1:]]
        spread = (1.0 - row.pscore) / (N_ACTIONS - 1)
        event = {
            "_label_cost": -row.reward,
            "_label_probability": row.pscore,
            "_label_Action": chosen,
            "_labelIndex": chosen - 1,
            "a": order,
            "p": [row.pscore if a == chosen else spread for a in order],
            "c": {"U": {"x1": row.x1, "x2": row.x2}, "_multi": [{"A": {"id": k}} for k in range(N_ACTIONS)]},
            "EventId": row.event,
            "Timestamp": "2024-05-01T10:00:00Z",
        }
        lines.append(orjson.dumps(event))
    return lines


@pytest.mark.parametrize("name", ["log.dsjson", "log.dsjson.gz", "events.log"])
def test_replay_dsjson_ips_snips_equal_the_same_data_as_csv(tmp_path: Path, name: str) -> None:
    frame = logged_frame()
    body = b"\n".join(to_dsjson(frame)) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    frame[["action", "reward", "pscore"]].to_csv(tmp_path / "log.csv", index=False)
    common = ["--policy", "uniform", "--policy", "fixed:2", "--estimators", "ips,snips", "--n-bootstrap", 10]
    fmt = ["--format", "dsjson"] if name == "events.log" else []
    from_dsjson = values(replay_rows("--log", path, *fmt, *common))
    from_csv = values(replay_rows("--log", tmp_path / "log.csv", "--n-actions", N_ACTIONS, *common))
    assert from_dsjson.keys() == from_csv.keys()
    assert len(from_csv) == 4
    for key, value in from_csv.items():
        assert from_dsjson[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_replay_full_distribution_gives_the_python_apis_dm_and_dr(tmp_path: Path) -> None:
    frame = logged_frame()
    frame.to_csv(tmp_path / "log.csv", index=False)
    logged = from_frame(frame, context=["x1", "x2"], n_actions=N_ACTIONS)
    dist = frame[[f"t{a}" for a in range(N_ACTIONS)]].to_numpy()
    expected = evaluate(logged, dist, estimators=("dm", "dr"), n_bootstrap=0, n_folds=4, seed=3)
    shuffled = frame.sample(frac=1.0, random_state=1)
    shuffled[["event", *(f"t{a}" for a in range(N_ACTIONS))]].to_parquet(tmp_path / "target.parquet")
    frame[[f"t{a}" for a in range(N_ACTIONS)]].to_csv(tmp_path / "target.csv", index=False)
    runs = {
        "columns": ["--target-cols", "t"],
        "column list": ["--target-cols", "t0,t1,t2,t3", "--context-cols", "x1,x2"],
        "file by id": [
            "--target-file",
            tmp_path / "target.parquet",
            "--id-col",
            "event",
            "--target-cols",
            "t",
        ],
        "file by row": ["--target-file", tmp_path / "target.csv"],
    }
    for name, args in runs.items():
        context = (
            [] if "--context-cols" in args else ["--context-cols", "x1,x2"] if "--target-file" in args else []
        )
        rows = replay_rows(
            "--log", tmp_path / "log.csv", *args, *context, "--estimators", "dm,dr", "--n-bootstrap", 0,
            "--n-folds", 4, "--seed", 3, "--n-actions", N_ACTIONS,
        )  # fmt: skip
        got = [r["value"] for r in rows]
        np.testing.assert_allclose(got, expected["value"], rtol=1e-12, err_msg=name)
        assert all(r["ci_low"] is None for r in rows)


def test_replay_is_invariant_to_the_order_of_the_rows(tmp_path: Path) -> None:
    frame = logged_frame(300, 4)
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.sample(frac=1.0, random_state=2).to_csv(tmp_path / "shuffled.csv", index=False)
    args = ["--target-cols", "t", "--context-cols", "x1,x2", "--n-bootstrap", 0, "--n-actions", N_ACTIONS]
    first = values(replay_rows("--log", tmp_path / "log.csv", *args))
    second = values(replay_rows("--log", tmp_path / "shuffled.csv", *args))
    assert {key[2] for key in first} == {"ips", "snips", "dm", "dr", "replay"}
    for key, value in first.items():
        assert second[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("name", ["log.csv.gz", "log.parquet", "log.pq", "log.jsonl", "log.tsv"])
def test_replay_reads_every_table_format_alike(tmp_path: Path, name: str) -> None:
    frame = logged_frame(200, 5)
    frame.to_csv(tmp_path / "log.csv", index=False)
    path = tmp_path / name
    if name.endswith((".parquet", ".pq")):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        path.write_bytes(b"\n".join(orjson.dumps(row) for row in frame.to_dict(orient="records")))
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    args = ["--target-cols", "t", "--n-bootstrap", 20, "--n-actions", N_ACTIONS]
    assert values(replay_rows("--log", path, *args)) == pytest.approx(
        values(replay_rows("--log", tmp_path / "log.csv", *args)), rel=1e-12
    )


def test_replay_prints_precision_and_writes_full_precision(tmp_path: Path) -> None:
    frame = logged_frame(200, 6)
    frame.to_csv(tmp_path / "log.csv", index=False)
    args = [
        "--log",
        tmp_path / "log.csv",
        "--policy",
        "uniform",
        "--estimators",
        "ips",
        "--n-actions",
        N_ACTIONS,
    ]
    printed = run("replay", *args, "--precision", 7, "--n-bootstrap", 0)
    assert printed.exit_code == 0, printed.output
    exact = evaluate(
        from_frame(frame, n_actions=N_ACTIONS),
        np.full((200, N_ACTIONS), 0.25),
        estimators=("ips",),
        n_bootstrap=0,
    )["value"].iloc[0]
    assert f"{exact:.7f}" in printed.output
    (row,) = replay_rows(*args, "--n-bootstrap", 0, "--context-cols", "x1,x2")
    assert row["value"] == exact  # the same float, to the last bit


def test_replay_obd_from_any_layout_equals_the_python_api(tmp_path: Path) -> None:
    root = place(tmp_path, "sdist archive")
    rows = replay_rows("--obd", "men", "--obd-policy", "bts", "--obd-dir", root, "--policy", "uniform")
    logged = load_obd("bts", "men", path=root)
    expected = evaluate(logged, np.full((len(logged), logged.n_actions), 1 / logged.n_actions))
    got = {(r["group"], r["estimator"]): r["value"] for r in rows}
    for row in expected.itertuples():
        assert got[(row.group, row.estimator)] == pytest.approx(row.value, rel=1e-12, nan_ok=True)


# Invalid invocations on a table log: (arguments, text of the one-line error).
INVALID = [
    (["--policy", "uniform", "--estimators", ""], "--estimators: expected one or more of"),
    (["--policy", "uniform", "--estimators", " , "], "--estimators: expected one or more of"),
    (["--policy", "uniform", "--estimators", "ips,magic"], "--estimators: expected one or more of"),
    (
        ["--policy", "column:t1"],
        "'column:t1' gives only the probability of the logged action, and dm, dr need",
    ),
    (["--policy", "uniform", "--obd", "all"], "--log FILE or --obd CAMPAIGN (one of them)"),
    ([], "give a target policy: --policy, --target-cols or --target-file"),
    (["--policy", "uniform", "--no-context", "--context-cols", "x1"], "--context-cols or --no-context"),
    (["--policy", "fixed:9"], "expected fixed:ACTION with ACTION in [0, 4)"),
    (["--policy", "greedy"], "policy 'greedy': expected one of: uniform"),
    (["--target-cols", "z"], "Expected target columns z0, z1, ... in"),
    (["--target-file", "short.csv"], "Expected 50 rows in"),
    (["--target-file", "short.csv", "--id-col", "event"], "Id column `event` not found in"),
    (["--policy", "uniform", "--context-cols", "nope"], "Column `nope` not found in"),
]


@pytest.mark.parametrize(("args", "message"), INVALID)
def test_replay_invalid_invocation_is_one_line(tmp_path: Path, args: list, message: str) -> None:
    frame = logged_frame(50, 7)
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame[["t0", "t1", "t2", "t3"]].head(10).to_csv(tmp_path / "short.csv", index=False)
    args = [tmp_path / a if a == "short.csv" else a for a in args]
    result = run("replay", "--log", tmp_path / "log.csv", "--n-actions", N_ACTIONS, *args)
    assert result.exit_code != 0
    assert result.output.startswith("Error:"), result.output
    assert result.output.count("\n") == 1, result.output
    assert message in result.output


def test_replay_dsjson_target_file_aligned_by_event_id(tmp_path: Path) -> None:
    frame = logged_frame(300, 8)
    (tmp_path / "log.dsjson").write_bytes(b"\n".join(to_dsjson(frame)))
    dist = frame[["event", "t0", "t1", "t2", "t3"]].sample(frac=1.0, random_state=3)
    dist.to_csv(tmp_path / "target.csv", index=False)
    args = ["--log", tmp_path / "log.dsjson", "--n-bootstrap", 0, "--context-cols", "U.x1,U.x2"]
    by_id = replay_rows(
        *args, "--target-file", tmp_path / "target.csv", "--id-col", "event", "--target-cols", "t"
    )
    logged = from_frame(frame, context=["x1", "x2"], n_actions=N_ACTIONS)
    expected = evaluate(logged, frame[["t0", "t1", "t2", "t3"]].to_numpy(), n_bootstrap=0)
    np.testing.assert_allclose([r["value"] for r in by_id], expected["value"], rtol=1e-12)
