"""Background jobs (training) run as separate processes, so the app never blocks.

A job is ``python -m core train … --job-dir DIR``: it appends one JSON line per progress
report to ``DIR/progress.jsonl`` and writes ``DIR/result.json`` when it ends (with the error
if it failed). Any session of the app can list jobs and draw their live curves from those files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.config import ROOT, child_environment, settings
from core.errors import StudioError
from core.release import auth
from core.release.roles import Account, Permission, require
from models.base import Progress


def jobs_dir() -> Path:
    path = settings().data_dir / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class JobLog:
    """The writer side: the progress callbacks of ``core.model_runs.train_run`` feed it."""

    def __init__(self, job_dir: str | Path):
        self.dir = Path(job_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = (self.dir / "progress.jsonl").open("a", buffering=1)

    def epoch(self, p: Progress) -> None:
        row = {
            "t": time.time(),
            "stage": p.stage,
            "epoch": p.epoch,
            "step": p.step,
            "steps_per_epoch": p.steps_per_epoch,
            "loss": p.loss,
            "fraction": p.fraction,
            **p.metrics,
        }
        self.file.write(json.dumps(row) + "\n")

    def finish(self, ok: bool, detail: str) -> None:
        self.file.close()
        tmp = self.dir / "result.json.tmp"
        tmp.write_text(json.dumps({"ok": ok, "detail": detail, "t": time.time()}))
        os.replace(tmp, self.dir / "result.json")
        self._revoke_token()

    def _revoke_token(self) -> None:
        """The job's sign-in (``start_training``'s token) ends with the job, so the token file left in the job's
        folder signs nobody in. A store that cannot be written right now leaves it to expire (one day); the
        job's result is written either way."""
        token_file = self.dir / "token"
        if not token_file.exists():
            return
        try:
            auth.sign_out(token_file.read_text().strip())
        except StudioError as exc:
            print(
                f"warning: the job's token was not revoked ({exc}); it expires within a day", file=sys.stderr
            )
        finally:
            token_file.unlink(missing_ok=True)


@dataclass
class Job:
    job_id: str
    dir: Path
    args: list[str]
    started: float
    progress: list[dict]
    result: dict | None
    pid: int | None

    @property
    def latest(self) -> dict | None:
        """The last progress point, or None before the first one."""
        return self.progress[-1] if self.progress else None

    def loss_points(self) -> list[dict]:
        """Progress points with a training loss, for the loss curve."""
        return [p for p in self.progress if p.get("loss") is not None]

    def validation_points(self) -> list[dict]:
        """Progress points with a validation NDCG@10 (one per epoch), for the validation curve."""
        return [p for p in self.progress if "ndcg@10" in p]

    @property
    def running(self) -> bool:
        if self.result is not None:
            return False
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    @property
    def state(self) -> str:
        if self.result is not None:
            return "done" if self.result.get("ok") else "failed"
        return "running" if self.running else "died"


def finetune_spec(kind: str, category: str = "") -> str:
    """The ``--finetune-on`` value for a slice picked in the app: ``purchases``, ``recent:Nd``, or
    ``category:`` followed by the category path."""
    return kind + category.strip() if kind == "category:" else kind


def start_training(
    *,
    actor: Account,
    architecture: str = "lstm",
    finetune_on: str | None = None,
    epochs: int | None = None,
    time_budget_min: float | None = None,
    device: str | None = None,
) -> Job:
    """Train in a child process (``python -m core train``) as ``actor``: checked here, and again in the
    child, which signs in with a one-day token of ``actor``'s readable by this user only, revoked when the job
    ends (``JobLog.finish``)."""
    require(actor, Permission.TRAIN)
    job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    job_dir = jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    token_file = job_dir / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(auth.create_token(actor, days=1))
    args = [sys.executable, "-m", "core", "train", "--job-dir", str(job_dir), "--architecture", architecture]
    if finetune_on:
        args += ["--finetune-on", finetune_on]
    if epochs:
        args += ["--epochs", str(epochs)]
    if time_budget_min:
        args += ["--time-budget", str(time_budget_min)]
    if device:
        args += ["--device", device]
    log = (job_dir / "output.log").open("w")
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=child_environment(PYTHONUNBUFFERED="1", HS_USER=actor.username, HS_TOKEN_FILE=str(token_file)),
    )
    (job_dir / "job.json").write_text(json.dumps({"args": args, "pid": proc.pid, "started": time.time()}))
    return read_job(job_dir)


def read_job(job_dir: Path) -> Job:
    meta = json.loads((job_dir / "job.json").read_text()) if (job_dir / "job.json").exists() else {}
    progress = []
    if (job_dir / "progress.jsonl").exists():
        for line in (job_dir / "progress.jsonl").read_text().splitlines():
            try:
                progress.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                pass
    result = json.loads((job_dir / "result.json").read_text()) if (job_dir / "result.json").exists() else None
    return Job(
        job_dir.name,
        job_dir,
        meta.get("args", []),
        meta.get("started", 0.0),
        progress,
        result,
        meta.get("pid"),
    )


def list_jobs(limit: int = 10) -> list[Job]:
    dirs = sorted((d for d in jobs_dir().iterdir() if d.is_dir()), reverse=True)[:limit]
    return [read_job(d) for d in dirs]


def job_output(job: Job, tail: int = 4000) -> str:
    path = job.dir / "output.log"
    return path.read_text(errors="replace")[-tail:] if path.exists() else ""
