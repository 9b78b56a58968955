"""Start-up: a command imports only what it uses (issue 14). pglast, the rules and the
rewrites load when a file is analysed, never for a deploy with nothing to do; no Kubernetes
client outside the operator."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from pgshift.migrations.model import Layout, Migration, split_chunks


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True, capture_output=True, text=True,
    )
    return set(out.stdout.split())


def test_the_cli_and_the_engine_session_do_not_load_pglast_or_kubernetes() -> None:
    loaded = _modules_after(
        "import pgshift.cli, pgshift.commands, pgshift.engine.session, pgshift.safety.model\n"
        "from pgshift.cli import build_parser, settings_from\n"
        "settings_from(build_parser().parse_args(['apply']))"
    )
    assert not {m for m in loaded if m.split(".")[0] in ("pglast", "kubernetes", "kopf")}
    assert "pgshift.safety.analyze" not in loaded and "pgshift.safety.rules" not in loaded


def test_safety_still_exports_its_names_when_asked() -> None:
    loaded = _modules_after(
        "import pgshift.safety.analyze\nfrom pgshift.safety import analyze, RULES, Phase, lint\n"
        "assert callable(analyze) and callable(pgshift.safety.analyze)"
    )
    assert "pgshift.safety.analyze" in loaded and "pgshift.safety.rules" in loaded


def test_the_hash_is_over_the_whole_utf8_text_whatever_its_size() -> None:
    text = "é☃ a\n" * 700_000  # several hash slices, multi-byte characters across their ends
    m = Migration("0001_a", 1, "a.sql", text, split_chunks(text), Layout.PLAIN)
    assert m.hash == hashlib.sha256(text.encode("utf-8")).hexdigest()
