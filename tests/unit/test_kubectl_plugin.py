"""`kubectl pgshift`: exactly what a person sees, rendered from the GitOps fixtures' objects."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgshift import kubectl_plugin as plugin

FIXTURES = Path(__file__).resolve().parents[1] / "gitops" / "fixtures"
NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=dt.UTC)


def fixture(name: str, *, rename: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    obj["metadata"]["creationTimestamp"] = "2026-11-26T09:00:00Z"
    if rename:
        obj["metadata"]["name"] = name
    return obj


def test_table_columns_are_aligned_like_kubectl() -> None:
    assert plugin.render_table(["NAME", "READY"], [["a-long-name", "True"], ["b", None]]) == (
        "NAME          READY\na-long-name   True\nb"
    )


def test_list_shows_one_line_per_migration() -> None:
    names = ["new", "progressing", "awaiting-approval", "failed", "complete", "stale-generation"]
    items = [fixture(n, rename=True) for n in names]
    assert plugin.render_list(items, NOW, namespaces=False) == "\n".join(
        [
            "NAME                READY   COMPLETE   PHASE              APPLIED            PENDING"
            "   GATE                         LAST BACKUP   AGE",
            "awaiting-approval   True    False      AwaitingApproval   0003_add_email     1      "
            "   Approval: 0004_drop_legacy   -             90m",
            "complete            True    True       Complete           0004_drop_legacy   0      "
            "   -                            28m           90m",
            "failed              False   False      MigrationFailed    0002_orders        2      "
            "   -                            -             90m",
            "new                 -       -          (no status yet)    -                  -      "
            "   -                            -             90m",
            "progressing         False   False      Applying           -                  2      "
            "   -                            -             90m",
            "stale-generation    True    True       Complete (stale)   0004_drop_legacy   0      "
            "   -                            28m           90m",
        ]
    )


def test_list_with_all_namespaces_adds_the_namespace_column() -> None:
    out = plugin.render_list([fixture("complete")], NOW, namespaces=True)
    assert out.splitlines()[0].startswith("NAMESPACE   NAME   READY")
    assert out.splitlines()[1].startswith("shop        shop   True")


def test_list_of_nothing_says_so() -> None:
    assert plugin.render_list([], NOW, namespaces=False) == "No Migration found."


def test_status_of_a_failed_migration_names_the_failure_and_the_way_out() -> None:
    assert plugin.render_status(fixture("failed"), NOW) == "\n".join(
        [
            "Migration shop/shop",
            "Generation:   1 (status describes 1)",
            "Phase:        MigrationFailed",
            "Source:       ConfigMap shop-migrations-7c9f",
            "Applied:      0002_orders (2 migrations)",
            "Pending:      2: 0003_add_email, 0004_drop_legacy",
            "Contract:     after Approval",
            "",
            "CONDITION     STATUS   REASON            SINCE",
            "Ready         False    MigrationFailed   30m",
            "Complete      False    MigrationFailed   30m",
            "Reconciling   False    MigrationFailed   30m",
            "Stalled       True     MigrationFailed   30m",
            "Message:      0003_add_email failed: 23505 could not create unique index"
            ' "users_email_key"',
            "",
            "Failure:      MigrationFailed: 0003_add_email (SQLSTATE 23505)",
            "  statement:  ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)",
            "  message:    could not create unique index",
            "",
            "What you can do:",
            "  read status.failure (migration, statement, SQLSTATE, hint); fix forward: ship a"
            " corrected source (a new ConfigMap or image; the failure clears by itself)",
            "  or fix the database, then: kubectl annotate migration/shop"
            " pgshift.dev/retry=$(date +%s) --overwrite",
            "  kubectl annotate migration/shop pgshift.dev/mark-applied=0003_add_email --overwrite"
            "  # only if you applied it by hand",
        ]
    )


def test_status_at_a_gate_says_how_to_approve() -> None:
    out = plugin.render_status(fixture("awaiting-approval"), NOW)
    assert "Gate:         Approval holds 0004_drop_legacy (step 9d81e0aa42c3-0)" in out
    assert "Approve with: kubectl pgshift approve shop 0004_drop_legacy" in out


def test_status_at_a_rollout_gate_names_the_deployment_and_offers_no_approval() -> None:
    out = plugin.render_status(fixture("ready"), NOW)
    assert "Contract:     after Rollout of Deployment web" in out
    assert "Gate:         Rollout holds 0004_drop_legacy" in out
    assert "Approve with" not in out


def test_status_of_a_stale_or_new_resource_says_pgshift_has_not_caught_up() -> None:
    assert "Note:         pgshift has not acted on the latest spec yet" in plugin.render_status(
        fixture("stale-generation"), NOW
    )
    new = plugin.render_status(fixture("new"), NOW)
    assert "Generation:   1 (no status yet)" in new
    assert "Phase:        (no status yet)" in new


def test_long_messages_wrap_under_their_label() -> None:
    out = plugin.render_status(fixture("blocked-by-gate"), NOW).splitlines()
    first = out.index(next(line for line in out if line.startswith("Message:")))
    assert out[first + 1].startswith(" " * 14)
    assert all(len(line) <= 100 for line in out)


def test_backups_show_the_last_backup_and_the_backup_jobs() -> None:
    summary = {
        "command": "backup",
        "ok": True,
        "backup": {
            "file": "/backups/shop/shop/20261126T100200Z-0003_add_email.dump",
            "size": 48213,
            "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        },
    }
    job = {
        "metadata": {"name": "shop-backup-4-0", "creationTimestamp": "2026-11-26T10:01:00Z"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    pod = {
        "metadata": {"labels": {"job-name": "shop-backup-4-0"}},
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 0, "message": json.dumps(summary)}}}
            ]
        },
    }
    out = plugin.render_backups(fixture("complete"), [job], [pod], NOW).splitlines()
    assert out[0] == "Backups of shop on the claim (oldest first):"
    assert out[1].split() == ["PATH", "SIZE", "TAKEN", "SCOPE", "SHA256", "CLAIM"]
    row = out[2]
    for cell in (
        "shop/shop/20261126T100200Z-0003_add_email.dump",
        "47.1 KiB",
        "2026-11-26T10:02:00Z (28m ago)",
        "AffectedTables (public.legacy)",
        summary["backup"]["sha256"],  # whole: pgshift.dev/restore names it
        "shop-db-backups",
    ):
        assert cell in row
    assert "Backup Jobs still kept:" in out
    assert any(line.startswith("shop-backup-4-0   Complete") for line in out)
    assert (
        out[-2] == "Copy one off the claim: kubectl pgshift backups get shop 2c26b46b68ff -o FILE"
    )
    assert "pgshift.dev/restore=<uid>/2c26b46b68ffc68ff99b" in out[-1]


def test_backups_list_what_status_keeps_on_the_claim_never_a_pruned_file() -> None:
    """Listed from status.backups, which the operator updates from each backup's `pruned`
    (the list used to show the last backup of each Job, pruned or not)."""
    obj = fixture("complete")
    kept = {"path": "/backups/shop/shop/b.dump", "sha256": "b" * 64, "size": 10,
            "time": "2026-11-26T10:05:00Z", "scope": "Database", "claimName": "c"}  # fmt: skip
    obj["status"]["backups"] = [kept]
    obj["status"]["lastBackup"] = kept
    out = plugin.render_backups(obj, [], [], NOW)
    assert "/backups/shop/shop/b.dump" in out and "0003_add_email" not in out
    assert plugin.find_backup(obj["status"], "bbbbbb")["path"] == kept["path"]
    assert plugin.find_backup(obj["status"], "b.dump")["path"] == kept["path"]
    with pytest.raises(plugin.PluginError, match=r"names no backup on the claim; known: b\.dump"):
        plugin.find_backup(obj["status"], "cccccc")


def test_the_copy_pod_keeps_no_token_and_mounts_the_claim_read_only() -> None:
    owner = {"metadata": {"name": "shop", "uid": "u-1"}}
    pod = plugin.copy_pod("shop-copy-1", "shop-db-backups", "img", 65532, owner)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert spec["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "shop-db-backups",
        "readOnly": True,
    }
    (container,) = spec["containers"]
    assert container["volumeMounts"][0]["readOnly"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_backups_without_any_backup_say_so() -> None:
    out = plugin.render_backups(fixture("progressing"), [], [], NOW)
    assert out.startswith("No backup recorded for shop.")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "5s"), (119, "119s"), (600, "10m"), (3 * 3600, "3h"), (3 * 86400, "3d")],
)
def test_ages_read_like_kubectl(seconds: int, expected: str) -> None:
    then = (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert plugin.age(then, NOW) == expected
    assert plugin.age(None, NOW) == "-"


@pytest.mark.parametrize(
    ("size", "expected"),
    [(512, "512 B"), (48213, "47.1 KiB"), (5 * 1024**3, "5.0 GiB"), (None, "-")],
)
def test_sizes_are_human(size: int | None, expected: str) -> None:
    assert plugin.human_size(size) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "shop", "approve", "shop", "0004_drop_legacy"],
        ["approve", "shop", "0004_drop_legacy", "-n", "shop"],
    ],
)
def test_the_namespace_flag_works_before_or_after_the_verb(argv: list[str]) -> None:
    args = plugin.parser().parse_args(argv)
    assert (args.sub_namespace or args.namespace) == "shop"
    assert (args.command, args.name, args.target) == ("approve", "shop", "0004_drop_legacy")


def test_status_names_every_deployment_of_a_rollout_list() -> None:
    obj = fixture("ready")
    obj["spec"]["contract"] = {"after": "Rollout", "rollout": {"deployments": ["web", "api"]}}
    out = plugin.render_status(obj, NOW)
    assert "Contract:     after Rollout of Deployments web, api" in out


def _awaiting_rollback() -> dict[str, Any]:
    obj = fixture("awaiting-approval")
    obj["status"]["rollback"] = {
        "to": "0001_init",
        "undo": ["0003_c", "0002_b"],
        "approval": "4:0003_c",
    }
    return obj


def test_status_of_a_rollback_says_what_it_undoes_and_how_to_approve() -> None:
    out = plugin.render_status(_awaiting_rollback(), NOW)
    assert "Rollback:     to 0001_init: undoes 0003_c, 0002_b" in out
    assert "Approve with: kubectl pgshift approve-rollback shop" in out


def test_approve_rollback_takes_the_value_status_names() -> None:
    assert plugin.rollback_approval(_awaiting_rollback()) == "4:0003_c"
    with pytest.raises(plugin.PluginError, match="no rollback waits"):
        plugin.rollback_approval(fixture("awaiting-approval"))


# --- backfill progress and --watch ----------------------------------------------------------------


def backfilling(**step: Any) -> dict[str, Any]:
    obj = fixture("progressing")
    obj["status"]["currentStep"] = {
        "key": "3f2a9c1d0b7e-1", "migration": "0003_add_email", "phase": "backfill", **step
    }  # fmt: skip
    return obj


def test_status_of_a_backfill_shows_rows_rate_and_time_left() -> None:
    out = plugin.render_status(
        backfilling(rows=30000, batches=30, rowsPerSecond=1250.5, rowsEstimate=120000,
                    etaSeconds=72),
        NOW,
    )  # fmt: skip
    assert (
        "Current step: 0003_add_email [backfill] 3f2a9c1d0b7e-1 — 30000 rows of ~120000 (25%) "
        "in 30 batches, 1250.5 rows/s, ~1m12s left"
    ) in out
    # before the first rate is known, and past a stale estimate: only what is known.
    early = plugin.render_status(backfilling(rows=10, batches=1, rowsEstimate=5), NOW)
    assert "— 10 rows in 1 batches\n" in early + "\n"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (59, "59s"),
        (72, "1m12s"),
        (3600 * 2 + 300, "2h05m"),
        (86400 * 3 + 3600 * 4, "3d04h"),
    ],
)
def test_time_left_reads_at_an_estimates_precision(seconds: int, expected: str) -> None:
    assert plugin.human_duration(seconds) == expected


def test_watch_output_is_read_object_by_object_however_kubectl_chunks_it() -> None:
    text = json.dumps({"kind": "Migration", "a": 1}, indent=2) + "\n" + json.dumps({"b": [2]})
    chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
    assert list(plugin.json_objects(chunks)) == [{"kind": "Migration", "a": 1}, {"b": [2]}]


def test_watch_prints_again_only_when_status_changes() -> None:
    view = plugin.StatusWatch("shop", all_namespaces=False)
    first = view.feed(backfilling(rows=10, batches=1), NOW)
    assert first is not None and first.startswith("--- 10:30:00 ---\n")
    assert "— 10 rows in 1 batches" in first
    assert view.feed(backfilling(rows=10, batches=1), NOW) is None  # the same object again
    later = view.feed(backfilling(rows=20, batches=2), NOW + dt.timedelta(seconds=10))
    assert later is not None and "— 20 rows in 2 batches" in later


def test_watch_of_all_migrations_keeps_a_table_of_each_one_seen() -> None:
    view = plugin.StatusWatch(None, all_namespaces=False)
    listed = {"kind": "MigrationList", "items": [fixture("complete", rename=True)]}
    assert "complete" in (view.feed(listed, NOW) or "")
    table = view.feed(fixture("failed", rename=True), NOW) or ""
    assert "complete" in table and "failed" in table
    gone = {**fixture("failed", rename=True)}
    gone["metadata"] = {**gone["metadata"], "deletionTimestamp": "2026-11-26T10:29:00Z"}
    assert "failed" not in (view.feed(gone, NOW) or "").split("\n", 2)[-1]


def test_status_takes_watch_flags() -> None:
    args = plugin.parser().parse_args(["status", "shop", "-w"])
    assert args.watch and args.name == "shop"
    assert plugin.parser().parse_args(["status", "--watch", "-A"]).all_namespaces
