"""A publish killed with SIGKILL at a random moment, 20 times in subprocesses: each time, after the next
reconcile, exactly one release is live, the database and the live pointer agree, and every artifact
matches its manifest."""

import multiprocessing as mp
import os
import random
import signal
import time

import pytest

from core.release import releases
from core.release.artifact import open_live, read_pointer
from core.release.roles import SYSTEM
from core.release.state import release_state

pytestmark = pytest.mark.slow
TRIALS = 20
PHASES = ("snapshot", "artifact", "commit", "pointer")  # the steps of a publish, in order


def publish_once(conn, head: int) -> None:
    """The child: publish once, saying when each step begins (test code wraps the steps; the publish is
    the real one), so that the parent can kill it at a random moment inside a chosen step."""
    from core.release import audit, releases, snapshot

    def announce(name, step):
        def wrapped(*args, **kwargs):
            conn.send((name, time.perf_counter()))
            return step(*args, **kwargs)

        return wrapped

    snapshot.ranking_snapshot = announce("snapshot", snapshot.ranking_snapshot)
    releases.write_artifact = announce("artifact", releases.write_artifact)
    audit.write = announce("commit", audit.write)
    releases.write_pointer = announce("pointer", releases.write_pointer)
    releases.publish(SYSTEM, "killed at some point", expected_head=head)
    conn.send(("done", time.perf_counter()))


# children fork from a server that has imported the publishing code once: a trial costs a publish, not
# the imports (torch, polars, duckdb) of a fresh interpreter
FORKS = mp.get_context("forkserver")
FORKS.set_forkserver_preload(["core.release.releases", "core.release.snapshot", "core.ranking.homepage"])


def start_publisher(head: int):
    receive, send = FORKS.Pipe(duplex=False)
    proc = FORKS.Process(target=publish_once, args=(send, head), daemon=True)
    proc.start()
    send.close()
    return proc, receive


def phase_lengths() -> dict[str, float]:
    """Seconds each step takes, from one publish that is not killed."""
    proc, receive = start_publisher(release_state().head_id)
    marks = []
    while not marks or marks[-1][0] != "done":
        marks.append(receive.recv())
    proc.join(60)
    assert proc.exitcode == 0
    return {name: end - start for (name, start), (_, end) in zip(marks, marks[1:])}


def kill_during(proc, receive, phase: str, length: float, rng: random.Random) -> None:
    try:
        while receive.recv()[0] != phase:
            pass
        time.sleep(rng.uniform(0, length))
    except EOFError:  # it finished first
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)


def test_a_killed_publish_leaves_one_consistent_live_release(shop):
    releases.publish(SYSTEM, "before the trials", expected_head=None)
    lengths = phase_lengths()
    assert set(lengths) == set(PHASES)
    rng = random.Random(12)
    outcomes = {"committed": 0, "not committed": 0}
    for trial in range(TRIALS):
        before = release_state().head_id
        phase = PHASES[trial % len(PHASES)]
        kill_during(*start_publisher(before), phase, lengths[phase], rng)
        releases.reconcile()
        state = release_state()
        assert state.head_id in (before, before + 1), f"trial {trial} ({phase})"
        outcomes["committed" if state.head_id == before + 1 else "not committed"] += 1
        assert state.live.release_id == state.head_id, (
            f"trial {trial} ({phase}): the newest release is not live"
        )
        assert read_pointer().entry_at().release_id == state.live.release_id, f"trial {trial} ({phase})"
        assert open_live()[0].release_id == state.live.release_id, f"trial {trial} ({phase})"
        assert releases.check_consistency() == [], f"trial {trial} ({phase})"
    assert outcomes["committed"] and outcomes["not committed"]  # the kills landed on both sides of the commit
    print(f"steps (s): { {k: round(v, 3) for k, v in lengths.items()} }; after {TRIALS} kills: {outcomes}")
