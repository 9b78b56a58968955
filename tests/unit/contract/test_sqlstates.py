"""The one retry table (pgshift.contract.sqlstates), code by code, as issue 9's constraints
list it."""

import pytest

from pgshift.contract.sqlstates import connect_failure_sqlstate, is_retryable

RETRYABLE = ["08000", "08001", "08003", "08006", "08P01", "40001", "40P01", "55P03", "57P01",
             "57P02", "57P03", "53300"]  # fmt: skip
NOT_RETRYABLE = ["28000", "28P01", "3D000", "57P04", "53100", "57014", "23505", "42P01", "42501",
                 "55000", "53200", "XX000"]  # fmt: skip


@pytest.mark.parametrize("sqlstate", RETRYABLE)
def test_retryable_sqlstate(sqlstate: str) -> None:
    assert is_retryable(sqlstate)


@pytest.mark.parametrize("sqlstate", NOT_RETRYABLE)
def test_not_retryable_sqlstate(sqlstate: str) -> None:
    assert not is_retryable(sqlstate)


def test_query_canceled_is_retryable_only_when_our_own_sigterm_cancelled_it() -> None:
    assert not is_retryable("57014")  # statement_timeout, pg_cancel_backend by someone
    assert is_retryable("57014", cancelled_by_us=True)
    assert not is_retryable("28P01", cancelled_by_us=True)  # the flag is about 57014 only


def test_a_connection_lost_without_a_sqlstate_is_retryable() -> None:
    assert is_retryable(None) and is_retryable("")


@pytest.mark.parametrize(
    ("message", "sqlstate"),
    [
        ('connection to server at "h", port 5432 failed: FATAL:  password authentication '
         'failed for user "app"', "28P01"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app", database "db"', "28000"),
        ('FATAL:  role "app" does not exist', "28000"),
        ('FATAL:  database "shop" does not exist', "3D000"),
        ("FATAL:  sorry, too many clients already", "53300"),
        ("FATAL:  remaining connection slots are reserved for roles with the SUPERUSER "
         "attribute", "53300"),
        ("FATAL:  the database system is starting up", "57P03"),
        ("FATAL:  the database system is shutting down", "57P03"),
        ("FATAL:  the database system is in recovery mode", "57P03"),
        ("FATAL:  28P01: Passwort-Authentifizierung fehlgeschlagen", "28P01"),  # VERBOSE form
        ('connection to server at "h" (10.0.0.1), port 5432 failed: Connection refused',
         "08001"),
        ('could not translate host name "db" to address: Name or service not known', "08001"),
        ("FATAL:  Passwort-Authentifizierung fehlgeschlagen", "08001"),  # translated: unknown
    ],
)  # fmt: skip
def test_connect_failures_get_their_sqlstate_from_libpqs_message(
    message: str, sqlstate: str
) -> None:
    assert connect_failure_sqlstate(message) == sqlstate
