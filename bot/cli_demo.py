"""`workflowbot demo`: a simulated month of Lumen's customer-success work, in under a minute,
against local stand-ins of every peer (bot/demo/), leaving a database to explore."""

from __future__ import annotations

import logging
import secrets
import shlex
import sqlite3
import time
from pathlib import Path

import click

from bot.cli_common import fail, load_settings

DEFAULT_DATABASE = Path("workflowbot-demo.db")
MARKER = "demo"  # the configuration key that says a database is the demo's


def _check_database(path: Path, fresh: bool) -> None:
    """Refuse a database that is not the demo's; remove a previous demo's with --fresh."""
    if not path.exists():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            found = conn.execute("SELECT 1 FROM configuration WHERE key = ?", (MARKER,)).fetchone()
    except sqlite3.Error:
        found = None
    if found is None:
        fail(f"{path} exists and is not a demo database: choose another --database")
    if not fresh:
        fail(
            f"{path} already holds a demo: explore it (DATABASE_URL=sqlite:///{path} "
            "workflowbot stats), or play again with --fresh"
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@click.command()
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DATABASE,
    show_default=True,
    help="The SQLite file the demo makes (refused if it holds anything but a demo).",
)
@click.option("--days", type=click.IntRange(1, 30), default=30, show_default=True)
@click.option("--quiet", is_flag=True, help="Only the summary at the end.")
@click.option("--fresh", is_flag=True, help="Replace the demo database of a previous run.")
@click.option(
    "--slack",
    "real_slack",
    is_flag=True,
    help="Post to the real workspace of SLACK_BOT_TOKEN (channels #cs-alerts, #cs-approvals).",
)
def demo(database: Path, days: int, quiet: bool, fresh: bool, real_slack: bool) -> None:
    """Play a month of customer-success work on a fast clock and show what the bot does:
    Slack messages, drafted emails and their approval, webhooks, owners, CRM tasks. Every
    peer is a local stand-in; nothing leaves this machine (except Slack, with --slack)."""
    began = time.monotonic()
    base = load_settings()
    if real_slack and not base.slack_bot_token:
        fail(
            "--slack: SLACK_BOT_TOKEN is not set (the bot token, xoxb-…, of an app in "
            "#cs-alerts and #cs-approvals; see the README, Slack app)"
        )
    _check_database(database, fresh)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from bot.demo import run
    from bot.demo.stage import PUBLIC_URL, stand_ins

    say = (lambda _text: None) if quiet else click.echo
    key = secrets.token_urlsafe(32)
    url = f"sqlite:///{database.resolve()}"
    with stand_ins(real_slack=real_slack) as stage:
        settings = stage.settings(base, database_url=url, secret_key=key)
        rt = run.connect(settings, marker=MARKER)
        try:
            played = run.play(rt, stage, days=days, say=say, start=run.month_start(days))
            links = run.report_links(rt, played)
        finally:
            rt.db.dispose()
    click.echo(run.closing(played, links, time.monotonic() - began))
    env = f"DATABASE_URL={url} SECRET_KEY={key} PUBLIC_URL={PUBLIC_URL}"
    env_file = database.with_suffix(".env")
    env_file.write_text("\n".join(env.split(" ")) + "\n")
    click.echo(
        "\nNext:\n"
        f"  {env} workflowbot run\n"
        f"  (the same settings are in {env_file}: `set -a; . {shlex.quote(str(env_file))}; "
        "set +a` before `workflowbot run`, `stats`, `logs`, `workflows test`)"
    )
