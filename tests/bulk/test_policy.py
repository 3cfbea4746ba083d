"""The outcome rules of the bulk engine, read as tables: one row per kind of answer, for upsert and delete."""

from __future__ import annotations

from typing import Any

import pytest

from kayse_async import errors
from kayse_async._bulk.policy import (
    NOT_RESENT,
    Batch,
    Verdict,
    annotated,
    for_input,
    judge,
    learn_size,
    resume,
)

KEY = ("external_source", "external_source_id")


def api(status: int, message: str = "no", field: str | None = None) -> errors.APIError:
    """The error the transport raises for ``status``, with the server's body."""
    return errors.error_for_status(status)(
        message, status=status, body={"message": message, "field": field}, method="POST", url="/v1/clients/bulk"
    )


def lost(*, sent: bool) -> errors.TransportError:
    return errors.ConnectError("connection lost", method="POST", url="/x", may_have_been_sent=sent)


UPSERT = Batch("upsert", 10, creates=True, natural_key=KEY)
UPDATES = Batch("upsert", 10, creates=False, natural_key=KEY)
DELETE = Batch("delete", 10)
ONE = Batch("upsert", 1, creates=True, natural_key=KEY)
RECOVER = Batch("upsert", 10, creates=True, recovering=True, natural_key=KEY)

MAYBE_UPDATES = "the updates may have been applied; sending them again is safe"
MAYBE_DELETED = "some of these cases may have been deleted; deleting again is safe"

TABLE: list[tuple[str, errors.KayseError, Batch, Verdict]] = [
    # nothing reached the server
    ("quota spent", errors.QuotaExhaustedError("spent"), UPSERT, Verdict("not_attempted", stop=True, void=True)),
    (
        "quota spent, delete",
        errors.QuotaExhaustedError("spent"),
        DELETE,
        Verdict("not_attempted", stop=True, void=True),
    ),
    ("never connected", lost(sent=False), UPSERT, Verdict("not_attempted", void=True)),
    ("never connected, delete", lost(sent=False), DELETE, Verdict("not_attempted", void=True)),
    (
        "client closed",
        errors.KayseError("this client is closed"),
        UPSERT,
        Verdict("not_attempted", stop=True, void=True),
    ),
    # sent, no usable answer
    ("lost after sending, creates", lost(sent=True), UPSERT, Verdict("uncertain", note=NOT_RESENT)),
    ("lost after sending, updates", lost(sent=True), UPDATES, Verdict("uncertain", note=MAYBE_UPDATES)),
    ("lost after sending, delete", lost(sent=True), DELETE, Verdict("uncertain", note=MAYBE_DELETED)),
    ("500, creates", api(500), UPSERT, Verdict("uncertain", note=NOT_RESENT)),
    ("500, delete", api(500), DELETE, Verdict("uncertain", note=MAYBE_DELETED)),
    ("unusable 200", api(200), UPSERT, Verdict("uncertain", note=NOT_RESENT)),
    ("redirect not followed", api(302), UPDATES, Verdict("uncertain", note=MAYBE_UPDATES)),
    # the server did nothing
    ("503 after retries", api(503), UPSERT, Verdict("rejected", void=True)),
    ("503 after retries, delete", api(503), DELETE, Verdict("rejected", void=True)),
    ("413", api(413, "batch too large: at most 100 items"), UPSERT, Verdict("rejected", action="split", void=True)),
    ("413, delete", api(413, "too large"), DELETE, Verdict("rejected", action="split", void=True)),
    ("400 too large", api(400, "Batch too large", "clients"), UPSERT, Verdict("rejected", action="split", void=True)),
    ("413 of one item", api(413, "too large"), ONE, Verdict("rejected", void=True)),
    (
        "400 naming an item",
        api(400, "too long", "clients[3].last_name"),
        UPSERT,
        Verdict("rejected", "bisect", void=True),
    ),
    ("400 naming no item", api(400, "bad"), UPSERT, Verdict("rejected", action="bisect", void=True)),
    ("400 of one item", api(400, "bad", "clients[0].x"), ONE, Verdict("rejected", void=True)),
    ("400, delete", api(400, "bad", "ids[3]"), DELETE, Verdict("rejected", action="bisect", void=True)),
    ("409", api(409, "conflict"), UPSERT, Verdict("rejected", void=True)),
    # the job stops
    ("401", api(401), UPSERT, Verdict("rejected", stop=True, void=True)),
    ("401, delete", api(401), DELETE, Verdict("rejected", stop=True, void=True)),
    ("403", api(403), UPSERT, Verdict("rejected", stop=True, void=True)),
    ("404", api(404), DELETE, Verdict("rejected", stop=True, void=True)),
    ("405", api(405), UPSERT, Verdict("rejected", stop=True, void=True)),
    ("429 after retries", api(429), DELETE, Verdict("rejected", stop=True, void=True)),
]

EARLIER = "a previous run had sent this batch without learning its outcome; "
RECOVERING: list[tuple[str, errors.KayseError, Verdict]] = [
    (
        "duplicate key on its first item: stored by the earlier attempt",
        api(400, "external_source_id is already used", "clients[0].external_source_id"),
        Verdict("succeeded", resolved="stored_before"),
    ),
    (
        "duplicate key, no position",
        api(400, "external_source_id is already used", "external_source_id"),
        Verdict("succeeded", resolved="stored_before"),
    ),
    (
        "duplicate key on a later item: the earlier attempt stored nothing",
        api(400, "external_source_id is already used", "clients[4].external_source_id"),
        Verdict("rejected", action="bisect", void=True),
    ),
    (
        "another refusal",
        api(400, "case 9 not found", "clients[0].case_ids[0]"),
        Verdict(
            "uncertain", note=f"{EARLIER}the server refused it now; whether the earlier attempt stored it is unknown"
        ),
    ),
    (
        "not sent again",
        errors.QuotaExhaustedError("spent"),
        Verdict(
            "uncertain",
            stop=True,
            note=f"{EARLIER}it was not sent again now; whether the earlier attempt stored it is unknown",
        ),
    ),
    ("lost again", lost(sent=True), Verdict("uncertain", note=NOT_RESENT)),
    ("413: split, the parts still recovering", api(413, "too large"), Verdict("rejected", action="split")),
    (
        "401",
        api(401),
        Verdict(
            "uncertain",
            stop=True,
            note=f"{EARLIER}the server refused it now; whether the earlier attempt stored it is unknown",
        ),
    ),
]


@pytest.mark.parametrize(("case", "error", "batch", "verdict"), TABLE, ids=[row[0] for row in TABLE])
def test_the_verdict_on_a_failed_batch(case: str, error: errors.KayseError, batch: Batch, verdict: Verdict) -> None:
    """Each kind of failure gives its status, stop, split/bisect and void, for upsert and delete alike."""
    assert judge(error, batch) == verdict


@pytest.mark.parametrize(("case", "error", "verdict"), RECOVERING, ids=[row[0] for row in RECOVERING])
def test_the_verdict_on_a_batch_sent_again_for_an_earlier_run(
    case: str, error: errors.KayseError, verdict: Verdict
) -> None:
    """A resent batch is never called refused or unsent; a duplicate of its first key means stored before."""
    assert judge(error, RECOVER) == verdict


RESUME: list[tuple[str, bool, bool, bool, str]] = [
    # kind, changed, creates, keyed -> what the rerun does
    ("done", False, True, True, "reuse"),
    ("done", False, False, False, "reuse"),
    ("done", True, True, True, "refuse"),
    ("done", True, False, False, "refuse"),
    ("sent", False, False, False, "send"),
    ("sent", True, False, False, "send"),
    ("sent", False, True, True, "recover"),
    ("sent", False, True, False, "uncertain"),
    ("sent", True, True, True, "refuse"),
    ("sent", True, True, False, "refuse"),
]


@pytest.mark.parametrize(("kind", "changed", "creates", "keyed", "decision"), RESUME)
def test_what_a_rerun_does_with_a_journaled_item(
    kind: Any, changed: bool, creates: bool, keyed: bool, decision: str
) -> None:
    """Stored rows are reused or, if changed, refused; updates go again; creates are recovered only with a key."""
    assert resume(kind, changed, creates=creates, keyed=keyed) == decision


def test_the_size_learned_from_a_refusal() -> None:
    """The server's 'at most N' is taken, else half; never more than the size refused, never above one known."""
    assert learn_size(api(413, "at most 120 items"), 500, None) == 120
    assert learn_size(api(413, "too large"), 500, None) == 250
    assert learn_size(api(413, "at most 900 items"), 500, None) == 499
    assert learn_size(api(413, "too large"), 500, 100) == 100
    assert learn_size(api(413, "too large"), 2, None) == 1


def test_an_error_is_renamed_to_the_input_index() -> None:
    """clients[2] of a batch becomes the input index of that item, in the field and in the message."""
    error = api(400, "clients[2].case_ids[0]: case 99999 not found", "clients[2].case_ids[0]")
    renamed = for_input(error, [40, 41, 47, 48])
    assert isinstance(renamed, errors.BadRequestError)
    assert renamed.body["field"] == "clients[47].case_ids[0]"
    assert renamed.message == "clients[47].case_ids[0]: case 99999 not found"
    assert for_input(api(400, "bad", "clients[9].x"), [1, 2]).body["field"] == "clients[9].x"  # type: ignore[attr-defined]  # no such position: kept


def test_a_note_keeps_the_class_and_attributes() -> None:
    """An annotated error is of the same class, with the same status and body, its message extended."""
    error = annotated(api(500, "boom"), "why")
    assert isinstance(error, errors.InternalServerError)
    assert (error.status, error.message) == (500, "boom; why")
    sent = annotated(lost(sent=True), "why")
    assert isinstance(sent, errors.ConnectError)
    assert sent.may_have_been_sent
