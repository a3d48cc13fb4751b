"""Write docs/examples/replay-example.dsjson.gz and model.vw: a VW DSJSON log with a known click model.

Run from the repository root: ``python docs/examples/make_dsjson_example.py``. It writes 5,000 events in the
format VW's learning loop and Azure Personalizer log, a Vowpal Wabbit ``cb_explore_adf`` model trained on
them, and prints the exact value of the targets used in docs/replay.md under the click model.

Each event offers 4 articles (``c._multi``); the shared features are the user's ``device`` and ``segment``
(strings) and the ``hour`` (a number). The logging policy is epsilon-greedy (epsilon 0.4) around a fixed
favourite, article 0; the click probability depends on the article and the device, so the best article
differs by device.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
N_EVENTS, N_ACTIONS, EPSILON, SEED = 5000, 4, 0.4, 7
#: Click probability of each article (columns) on mobile (row 0) and desktop (row 1).
CLICK = np.array([[0.04, 0.10, 0.03, 0.05], [0.08, 0.02, 0.03, 0.12]])


def main() -> None:
    rng = np.random.default_rng(SEED)
    device = rng.integers(0, 2, size=N_EVENTS)
    segment = rng.choice(["new", "regular", "loyal"], size=N_EVENTS)
    hour = rng.integers(0, 24, size=N_EVENTS)
    logging = np.full(N_ACTIONS, EPSILON / N_ACTIONS)
    logging[0] += 1 - EPSILON
    chosen = rng.choice(N_ACTIONS, size=N_EVENTS, p=logging)
    click = rng.random(N_EVENTS) < CLICK[device, chosen]
    lines = []
    for i in range(N_EVENTS):  # one JSON object per event, as the learning loop writes them
        others = [a for a in range(N_ACTIONS) if a != chosen[i]]
        ranked = [int(chosen[i]), *others]
        event = {
            "_label_cost": -float(click[i]),
            "_label_probability": float(logging[chosen[i]]),
            "_label_Action": int(chosen[i]) + 1,
            "_labelIndex": int(chosen[i]),
            "o": [{"v": float(click[i]), "EventId": f"ev-{i:05d}"}],
            "Timestamp": f"2024-05-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.0000000Z",
            "Version": "1",
            "EventId": f"ev-{i:05d}",
            "a": [a + 1 for a in ranked],
            "c": {
                "User": {"device": ["mobile", "desktop"][device[i]], "segment": str(segment[i])},
                "Context": {"hour": int(hour[i])},
                "_multi": [{"Article": {"id": f"article-{a}"}} for a in range(N_ACTIONS)],
            },
            "p": [float(logging[a]) for a in ranked],
            "VWState": {"m": "example/1"},
        }
        lines.append(orjson.dumps(event))
    path = HERE / "replay-example.dsjson.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))

    import vowpalwabbit

    model = HERE / "replay-example-model.vw"
    workspace = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson -q UA --epsilon 0.1 --random_seed 1 --quiet -f {model}"
    )
    for line in lines:
        examples = workspace.parse(line.decode())
        workspace.learn(examples)
        workspace.finish_example(examples)
    workspace.finish()
    print(f"wrote {path} and {model}")
    print(f"exact value of uniform: {CLICK[device].mean():.4f}")
    for a in range(N_ACTIONS):
        print(f"exact value of fixed:{a}: {CLICK[device, a].mean():.4f}")
    print(f"exact value of the best article per device: {CLICK[device].max(axis=1).mean():.4f}")


if __name__ == "__main__":
    main()
