"""The interactive SQL prompt of ``biolake sql``: statements end with ';', errors never end it."""

from __future__ import annotations

import click

from biolake.lake.errors import BiolakeError
from biolake.queries.output import write_result
from biolake.queries.sql import LakeConnection

HELP = "End each statement with ';'. SHOW TABLES; lists the views. Type .quit (or Ctrl-D) to leave."


def sql_prompt(con: LakeConnection) -> None:
    """Read statements from the terminal and print each result as a table."""
    click.echo(f"biolake SQL on release {con.release.release!r} (read-only). {HELP}")
    buffer: list[str] = []
    while True:
        try:
            line = input("biolake> " if not buffer else "     ..> ")
        except EOFError:
            click.echo()
            return
        if not buffer and line.strip() in (".quit", ".exit", "exit", "quit"):
            return
        if not buffer and line.strip() == ".help":
            click.echo(HELP)
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            statement, buffer = "\n".join(buffer), []
            try:
                write_result(con.sql(statement), output_format="table", out=None,
                             all_rows="biolake sql 'QUERY' --format csv --out FILE")
            except BiolakeError as exc:
                click.echo(f"error: {exc}", err=True)
