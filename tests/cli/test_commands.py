"""The commands other than import, via click's runner: look-ups, deletes, confirmation prompts, the emulator."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kayse_async import Kayse
from kayse_async.cli._commands import parse_ids
from kayse_async.cli._config import UsageProblem
from kayse_async.cli._jobs import eta_seconds
from kayse_async.models import QuotaSnapshot
from kayse_async.testing import ThreadedEmulator

from .conftest import API_KEY, against, invoke, write


@pytest.fixture
def kayse(emulator: ThreadedEmulator) -> Iterator[Kayse]:
    """A client of the test emulator, to set data up."""
    with Kayse(API_KEY, base_url=emulator.url, calls_base_url=emulator.url) as client:
        yield client


@pytest.fixture
def linked(kayse: Kayse) -> tuple[int, int]:
    """A client linked to a case: (case id, client id)."""
    client = kayse.clients.create(external_source="t", external_source_id="c1", first_name="Ann", last_name="Lee")
    assert client.id is not None
    case = kayse.cases.create(
        case_number="N-1",
        external_source="t",
        external_source_id="k1",
        status="active",
        type="civil",
        client_ids=[client.id],
    )
    assert case.id is not None
    return case.id, client.id


def test_get_prints_the_record_as_json(emulator: ThreadedEmulator, linked: tuple[int, int]) -> None:
    """`kayse get case ID` prints the case, linked client included, as JSON on stdout."""
    case_id, client_id = linked
    result = invoke(against(emulator, "get", "case", str(case_id)))
    assert result.exit_code == 0, result.output
    case = json.loads(result.stdout)
    assert (case["id"], case["case_number"], case["client_ids"]) == (case_id, "N-1", [client_id])
    assert json.loads(invoke(against(emulator, "get", "client", str(client_id))).stdout)["first_name"] == "Ann"


def test_get_of_a_missing_record_is_one_line_and_exit_1(emulator: ThreadedEmulator) -> None:
    """A 404 ends the command with one line on stderr and exit status 1, not a traceback."""
    result = invoke(against(emulator, "get", "client", "4242"))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "404" in result.stderr


def test_sms_declined_sends_nothing(emulator: ThreadedEmulator, linked: tuple[int, int]) -> None:
    """Answering no (or nothing) at the prompt: nothing sent, exit 1, the outbox stays empty."""
    case_id, client_id = linked
    before = emulator.stats()["requests"]
    for answer in ("n\n", "\n"):
        args = against(emulator, "sms", "--case-id", str(case_id), "--client-id", str(client_id), "--message", "Hi")
        result = invoke(args, input=answer)
        assert result.exit_code == 1
        assert "Nothing sent" in result.stderr
        assert "Send?" in result.stderr
    assert emulator.snapshot()["outbox"] == []
    assert emulator.stats()["requests"] == before


def test_sms_confirmed_or_yes_is_sent_once(emulator: ThreadedEmulator, linked: tuple[int, int]) -> None:
    """`y` at the prompt sends one SMS; --yes sends without asking."""
    case_id, client_id = linked
    ids = ["--case-id", str(case_id), "--client-id", str(client_id)]
    confirmed = invoke(against(emulator, "sms", *ids, "--message", "Hearing on Monday"), input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "sms scheduled" in confirmed.stdout
    unasked = invoke(against(emulator, "sms", *ids, "--message", "Second", "--yes"))
    assert unasked.exit_code == 0, unasked.output
    assert "Send?" not in unasked.stderr
    outbox = emulator.snapshot()["outbox"]
    assert [(m["kind"], m["message"], m["client_id"]) for m in outbox] == [
        ("sms", "Hearing on Monday", client_id),
        ("sms", "Second", client_id),
    ]


def test_email_asks_then_sends_with_subject(emulator: ThreadedEmulator, linked: tuple[int, int]) -> None:
    """`kayse email`: declined sends nothing; --yes sends one email with its subject."""
    case_id, client_id = linked
    args = ["email", "--case-id", str(case_id), "--client-id", str(client_id), "--subject", "S", "--message", "M"]
    assert invoke(against(emulator, *args), input="no\n").exit_code == 1
    assert emulator.snapshot()["outbox"] == []
    result = invoke(against(emulator, *args, "--yes"))
    assert result.exit_code == 0, result.output
    outbox = emulator.snapshot()["outbox"]
    assert [(m["kind"], m["subject"], m["message"]) for m in outbox] == [("email", "S", "M")]


def test_delete_cases_from_a_file_and_arguments(emulator: ThreadedEmulator, kayse: Kayse, tmp_path: Path) -> None:
    """Ids from a file and from arguments are deleted in one go after confirmation; declining deletes nothing."""
    result = kayse.cases.bulk_upsert(
        [
            {"case_number": f"D-{n}", "external_source": "t", "external_source_id": f"d{n}", "status": "a", "type": "b"}
            for n in range(6)
        ]
    )
    ids = [case.id for case in result.succeeded]
    ids_file = write(tmp_path / "ids.txt", f"# cases to delete\n{ids[0]}, {ids[1]}\n{ids[2]}\n")
    args = against(emulator, "delete", "cases", "--ids", str(ids_file), str(ids[3]), "--json")
    assert invoke(args, input="n\n").exit_code == 1
    assert len(emulator.snapshot()["cases"]) == 6
    confirmed = invoke(args, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert sorted(json.loads(confirmed.stdout)["deleted_ids"]) == sorted(ids[:4])
    assert sorted(case["id"] for case in emulator.snapshot()["cases"]) == sorted(ids[4:])


def test_lists_and_metadata_as_json(emulator: ThreadedEmulator, kayse: Kayse, linked: tuple[int, int]) -> None:
    """case-lists, campaigns and metadata print what the server holds."""
    case_id, _ = linked
    case_list = kayse.case_lists.create(name="Everyone", filter={}, include_ids=[case_id])
    assert case_list.id is not None
    kayse.campaigns.create(
        name="Intake", agent_id="a1", case_list_id=case_list.id, send_sms_before_call=False, sms_before_call_text="x"
    )
    lists = json.loads(invoke(against(emulator, "case-lists", "--json")).stdout)
    assert [(cl["name"], cl["case_ids"]) for cl in lists] == [("Everyone", [case_id])]
    campaigns = json.loads(invoke(against(emulator, "campaigns", "--json")).stdout)
    assert [c["name"] for c in campaigns] == ["Intake"]
    objects = json.loads(invoke(against(emulator, "metadata", "--json")).stdout)
    assert {o["name"] for o in objects} >= {"clients", "cases", "case_lists"}
    table = invoke(against(emulator, "case-lists"))
    assert "Everyone" in table.stdout


def test_quota_in_the_sandbox() -> None:
    """`kayse --sandbox quota`: the sandbox's budget, 500 per window, one spent by asking."""
    result = invoke(["--sandbox", "quota", "--json"])
    assert result.exit_code == 0, result.output
    quota = json.loads(result.stdout)
    assert (quota["limit"], quota["remaining"]) == (500, 499)
    assert quota["resets_at"] is not None


def test_emulator_command_uses_the_emulator_parser() -> None:
    """`kayse emulator --help` is the emulator's own argument parser, named for this command."""
    result = invoke(["emulator", "--help"])
    assert result.exit_code == 0
    assert "usage: kayse emulator" in result.stdout
    assert "--max-batch" in result.stdout
    assert invoke(["emulator", "--window", "nope", "--api-key", "k"]).exit_code == 2


def test_parse_ids_reads_files_arguments_and_refuses_junk(tmp_path: Path) -> None:
    """Ids may be arguments, comma lists or files with comments; anything else is a usage error."""
    ids_file = write(tmp_path / "ids", "1 2\n# note\n3,4 # trailing\n")
    assert parse_ids([str(ids_file), "5,6", "7"]) == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(UsageProblem, match="'x1'"):
        parse_ids(["x1"])
    with pytest.raises(UsageProblem, match="'0'"):
        parse_ids(["0"])


def quota(remaining: int | None, reset_in: float | None, window: float | None = 10.0) -> QuotaSnapshot:
    """A budget of 500 requests, ``reset_in`` seconds from its Reset, in windows of ``window`` seconds."""
    resets_at = None if reset_in is None else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=reset_in)
    return QuotaSnapshot(limit=500, remaining=remaining, resets_at=resets_at, window=window)


@pytest.mark.parametrize(
    ("items_left", "remaining", "reset_in", "pace", "expected"),
    [
        (1_000, 10, 5.0, 100.0, 10.0),  # budget covers the rest: the pace decides (1,000 items at 100/s)
        (1_000, 10, 5.0, None, None),  # no pace yet and enough budget: unknown
        (10_000, 5, 5.0, 100.0, 5.0),  # 20 requests, 5 left: the Reset (5 s), then the next window holds the rest
        (510_000, 0, 5.0, 1.0, 5.0 + 2 * 10.0),  # 1,020 requests, none left: the Reset, then two learned windows
        (510_000, 0, None, 1.0, 3 * 10.0),  # no Reset told (a token bucket): a window from now, then the rest
        (1_000, None, 5.0, 100.0, None),  # nothing known of the budget yet
        (0, 0, 5.0, None, 0.0),
    ],
)
def test_eta_follows_the_server_reset_and_the_learned_window(
    items_left: int, remaining: int | None, reset_in: float | None, pace: float | None, expected: float | None
) -> None:
    """The ETA is the pace while the budget lasts, then the server's Reset and the learned 10 s windows needed."""
    eta = eta_seconds(quota(remaining, reset_in), items_left, 500, pace)
    assert eta == (None if expected is None else pytest.approx(expected, abs=0.1))


def test_eta_is_unknown_while_the_window_is_not_learned() -> None:
    """Beyond the next Reset, an unknown window length gives no ETA rather than an assumed hour."""
    assert eta_seconds(quota(0, 5.0, window=None), 510_000, 500, 1.0) is None  # three windows, two of unknown length
    assert eta_seconds(quota(0, None, window=None), 510_000, 500, 1.0) is None
    assert eta_seconds(quota(0, 5.0, window=None), 250_000, 500, 1.0) == pytest.approx(5.0, abs=0.1)  # one window


def test_delete_with_clients_removes_clients_linked_only_to_deleted_cases(
    emulator: ThreadedEmulator, linked: tuple[int, int]
) -> None:
    """--with-clients: the case's only client goes with it; --yes asks nothing."""
    case_id, client_id = linked
    assert [c["id"] for c in emulator.snapshot()["clients"]] == [client_id]
    result = invoke(against(emulator, "delete", "cases", str(case_id), "--with-clients", "--yes"))
    assert result.exit_code == 0, result.output
    assert "Deleted 1 case." in result.stdout
    snapshot = emulator.snapshot()
    assert snapshot["cases"] == []
    assert snapshot["clients"] == []


def test_human_output_of_metadata_quota_and_campaigns() -> None:
    """Without --json: tables and a sentence on stdout, in the sandbox."""
    metadata = invoke(["--sandbox", "metadata"])
    assert metadata.exit_code == 0, metadata.output
    assert "case_number" in metadata.stdout
    assert "external_source_id" in metadata.stdout
    quota = invoke(["--sandbox", "quota"])
    assert quota.exit_code == 0, quota.output
    assert "499 of 500 requests left" in quota.stdout
    assert "sandbox: a local emulator" in quota.stderr
    campaigns = invoke(["--sandbox", "campaigns"])
    assert campaigns.exit_code == 0, campaigns.output
    assert "no campaigns" in campaigns.stderr
