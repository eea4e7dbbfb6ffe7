"""The publishing commands of ``python -m core``: publish, rollback, releases, cancel-release, audit-log,
users, forget-user. Each signs in as ``HS_USER`` (with ``HS_PASSWORD`` or ``HS_TOKEN_FILE``) and is checked
and audited in core exactly like the page; a refusal is one sentence on stderr and exit status 2."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.config import settings
from core.errors import InputError

# the command bodies import what they use: `python -m core stats` should not pay for torch and the ranking


def _when(text: str) -> datetime:
    """ISO 8601; without an offset the time is UTC."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--at {text!r} is not a time", fix="use 2026-11-01T18:00 (UTC) or add an offset"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _show(frame) -> None:
    import polars as pl

    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=180, tbl_hide_dataframe_shape=True
    ):
        print(frame)


def describe(diff) -> list[str]:
    """The diff in a few lines, for the shell."""
    live = f"release {diff.live.release_id}" if diff.live else "nothing published yet"
    lines = [
        f"draft: rule set {diff.draft.rule_set_id} v{diff.draft.rule_set_version}, model {diff.draft.run_id}"
    ]
    lines.append(f"live:  {live}")
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for c in diff.rules:
        detail = ", ".join(f.field for f in c.fields) if c.change == "changed" else c.kind
        lines.append(f"  {marks[c.change]} {c.rule_id} ({detail})")
    if not diff.rules:
        lines.append("  no rule changes")
    lines.append(f"  model {'changed' if diff.model_changed else 'unchanged'}")
    return lines


def cmd_publish(args) -> int:
    from core.release import auth
    from core.release.roles import Permission, require

    actor = require(auth.cli_account(), Permission.PUBLISH)  # before loading the ranking for the diff
    from core.release import releases
    from core.release.diff import release_diff

    diff = release_diff()
    print("\n".join(describe(diff)))
    head = args.expect_release if args.expect_release is not None else diff.head_id
    release = releases.publish(
        actor, args.note, expected_head=head, expected_draft=diff.draft, starts_at=args.at
    )
    when = f"goes live at {release.starts_at:%Y-%m-%d %H:%M} UTC" if release.starts_at else "is live"
    print(f"release {release.release_id} {when} (artifact {release.artifact}, {release.content_hash[:12]})")
    return 0


def cmd_rollback(args) -> int:
    from core.release import auth, releases
    from core.release.state import release_state

    actor = auth.cli_account()
    note = args.note or f"rollback to release {args.release_id}"
    release = releases.rollback(
        actor, args.release_id, note, expected_head=release_state().head_id, starts_at=args.at
    )
    print(f"release {release.release_id} makes release {args.release_id}'s artifact live again")
    return 0


def cmd_releases(args) -> int:
    import polars as pl

    from core.release import auth, releases
    from core.release.roles import Permission, require
    from core.release.state import release_state

    require(auth.cli_account(), Permission.VIEW)
    for line in releases.reconcile():
        print(f"reconciled: {line}")
    state = release_state()
    rows = [
        {"release": r.release_id, "kind": r.kind, "status": state.status(r), "rules": f"v{r.rule_set_version}",
         "model": r.run_id, "artifact": r.artifact, "by": r.published_by, "at (UTC)": r.published_at,
         "note": r.note}
        for r in state.releases
    ]  # fmt: skip
    _show(pl.DataFrame(rows)) if rows else print("nothing published yet")
    if args.check:
        problems = releases.check_consistency()
        print("\n".join(problems) or "database and artifacts agree; every artifact matches its manifest")
        return 1 if problems else 0
    return 0


def cmd_cancel(args) -> int:
    from core.release import auth, releases

    releases.cancel_scheduled(auth.cli_account(), args.release_id, args.note)
    print(f"release {args.release_id} will not go live")
    return 0


def cmd_audit_log(args) -> int:
    from core.release import audit, auth
    from core.release.roles import Permission, require

    actor = auth.cli_account()
    if args.verify:
        require(actor, Permission.READ_AUDIT_LOG)
        problems = audit.verify()
        print("\n".join(problems) or "the audit log is intact: every row is as it was written")
        return 1 if problems else 0
    since, until = (
        _when(t).astimezone(UTC).replace(tzinfo=None) if t else None for t in (args.since, args.until)
    )
    frame = audit.query(
        actor,
        actor=args.actor,
        action=args.action,
        target=args.object,
        since=since,
        until=until,
        limit=args.limit,
    )
    if args.json:
        rows = [
            {**r, "before": json.loads(r["before"] or "null"), "after": json.loads(r["after"] or "null")}
            for r in frame.to_dicts()
        ]
        print(json.dumps(rows, default=str, indent=1))
    else:
        _show(frame.rename({"target": "object"}))
    return 0


def _new_password() -> str:
    if not sys.stdin.isatty():  # a script pipes the new password in
        return sys.stdin.readline().rstrip("\n")
    first, second = getpass.getpass("new password: "), getpass.getpass("again: ")
    if first != second:
        raise InputError("the two passwords differ", fix="type the same password twice")
    return first


def cmd_users(args) -> int:
    from core.release import auth, users

    what = args.what
    actor = auth.cli_account(allow_one_time=what == "passwd")
    if what == "passwd":
        auth.change_password(
            actor, _new_password(), None if actor.must_change_password else settings().password
        )
        print(f"password of {actor.username} changed")
    elif what == "token":
        token = auth.create_token(actor, days=args.days)
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        print(
            f"token for {actor.username} written to {out} (valid {args.days:g} days): set HS_TOKEN_FILE={out}"
        )
    elif what == "list":
        _show(users.list_users(actor))
    elif what == "add":
        password = users.create_user(actor, args.name, args.role, args.email)
        print(f"created {args.name} ({args.role}); one-time password: {password}")
    elif what == "role":
        users.set_role(actor, args.name, args.role)
        print(f"{args.name} is now {args.role}")
    elif what == "reset":
        print(f"new one-time password for {args.name}: {users.reset_password(actor, args.name)}")
    else:
        users.set_disabled(actor, args.name, what == "disable")
        print(f"{args.name} {what}d")
    return 0


def cmd_forget_user(args) -> int:
    from core.release import auth, privacy

    report = privacy.forget_user(auth.cli_account(), args.user_id)
    print("\n".join(report.lines()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the publishing commands to ``python -m core``."""
    p = sub.add_parser("publish", help="publish the draft (latest saved rules + active model) as a release")
    p.add_argument("--note", required=True, help="why this release (required)")
    p.add_argument("--at", type=_when, help="go live at this time (ISO 8601; UTC unless an offset is given)")
    p.add_argument("--expect-release", type=int, help="refuse unless this is still the newest release")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("rollback", help="make an earlier release live again (a new release, same artifact)")
    p.add_argument("release_id", type=int)
    p.add_argument("--note")
    p.add_argument("--at", type=_when)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("releases", help="list releases, what is live and what goes live when")
    p.add_argument("--check", action="store_true", help="verify every artifact and the live pointer")
    p.set_defaults(func=cmd_releases)

    p = sub.add_parser("cancel-release", help="cancel a scheduled release before it goes live")
    p.add_argument("release_id", type=int)
    p.add_argument("--note", required=True)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("audit-log", help="print the audit log (newest first)")
    p.add_argument("--actor")
    p.add_argument("--action", nargs="*")
    p.add_argument("--object", help="part of the object's name")
    p.add_argument("--since", help="ISO 8601 (UTC unless an offset is given)")
    p.add_argument("--until")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify", action="store_true", help="check the hash chain")
    p.set_defaults(func=cmd_audit_log)

    p = sub.add_parser(
        "users", help="accounts: list, add, role, reset, disable, enable (admin); token, passwd"
    )
    what = p.add_subparsers(dest="what", required=True)
    what.add_parser("list")
    what.add_parser("passwd", help="change your password (reads it twice, or one line from a pipe)")
    q = what.add_parser("token", help="write a sign-in token file for scripts (HS_TOKEN_FILE)")
    q.add_argument("--out", required=True)
    q.add_argument("--days", type=float, default=30)
    q = what.add_parser("add")
    q.add_argument("name")
    q.add_argument("--role", required=True, help="viewer | merchandiser | product_manager | admin")
    q.add_argument("--email", help="for sign-in through the OIDC provider")
    q = what.add_parser("role")
    q.add_argument("name")
    q.add_argument("role")
    for name in ("reset", "disable", "enable"):
        what.add_parser(name).add_argument("name")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("forget-user", help="erase a shopper's events and what was derived from them (admin)")
    p.add_argument("user_id")
    p.set_defaults(func=cmd_forget_user)
