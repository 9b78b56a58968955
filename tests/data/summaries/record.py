"""Re-record the v1 summaries (today's shape, before the schema field) from a real run:
`.venv/bin/python tests/data/summaries/record.py OUTDIR` (a throwaway PostgreSQL; the URL and
paths are replaced by placeholders so the files are stable). Kept for the record: v1 files are
history and are not re-recorded once the writer moves on."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.helpers import run_pgshift, write_plain_folder
from tests.pgserver import running_server

MIGRATIONS = [
    "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    "CREATE INDEX users_email_idx ON users (email);\n",
    "-- pgshift:phase=contract\nALTER TABLE users DROP COLUMN email;\n",
]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with running_server() as server, tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        url = server.create_database("record")
        src = write_plain_folder(Path(tmp) / "src", MIGRATIONS)

        def run(name: str, *args: str) -> None:
            result = Path(tmp) / f"{name}.json"
            proc = run_pgshift(*args, "--output", "json", "--result-file", str(result),
                               database_url=url)
            text = result.read_text().replace(tmp, "/work").replace(str(server.port), "5432")
            data = json.loads(text)
            (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
            print(name, proc.returncode, len(text))

        run("plan", "plan", "--dir", str(src), "--stop-before", "0003_m2")
        run("apply_stopped", "apply", "--dir", str(src), "--stop-before", "0003_m2")
        run("backup", "backup", "--to", f"{tmp}/b/start.dump", "--tables", "users")
        run("apply_done", "apply", "--dir", str(src))
        bad = write_plain_folder(
            Path(tmp) / "bad", [*MIGRATIONS, "INSERT INTO users VALUES (1), (1);\n"]
        )
        run("apply_failed", "apply", "--dir", str(bad))
        run("lint", "lint", "--dir", str(bad))
        run("status", "status", "--dir", str(bad))
        run("bad_input", "apply", "--dir", str(bad), "--target", "nope")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
