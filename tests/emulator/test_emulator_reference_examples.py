"""Every curl example of the reference, run against the emulator.

The examples are read from ../shared/reference/kayse-public-api.txt (beside
the repository) when it exists, else from the copy in data/. Host and key
are substituted, and the example's ids are swapped for ids of records that
exist: the id a create example shows in its response becomes the id the
emulator gave; any other id is backed by a record created for it. Each
example must succeed, except the two the reference wrote as invalid JSON
(the calls example, with single quotes; the campaign example, with a
trailing comma), which must get a 400.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest

from .helpers import Api

ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared" / "reference" / "kayse-public-api.txt"
EMBEDDED = Path(__file__).parent / "data" / "kayse-public-api.txt"
MALFORMED = {"Schedule New AI Call", "Create Campaign"}
CALLS_HOST = "public-api.kayse.ai"


@attrs.frozen
class Example:
    """One curl example and what the reference says around it."""

    title: str
    method: str
    url: str
    headers: dict[str, str]
    data: str | None
    http_line: tuple[str, str] | None
    response: Any


def _json_block(lines: list[str], start: int) -> Any:
    block: list[str] = []
    for line in lines[start:]:
        if not line.strip() or line.strip()[0] not in '{}[]"':
            break
        block.append(line)
    try:
        return json.loads("\n".join(block))
    except ValueError:
        return None


def parse_examples(text: str) -> list[Example]:
    """The curl examples of the reference, in order."""
    lines = text.splitlines()
    examples: list[Example] = []
    for index, line in enumerate(lines):
        found = re.match(r"curl --location --request (\w+) '([^']+)'", line)
        if found is None:
            continue
        headers: dict[str, str] = {}
        data: str | None = None
        cursor = index + 1
        while cursor < len(lines) and lines[cursor].startswith("--"):
            option = lines[cursor]
            header = re.match(r"--header '([^:]+): ([^']*)'", option)
            if header:
                headers[header.group(1)] = header.group(2)
                cursor += 1
            elif option.startswith("--data-raw '"):
                body = [option.removeprefix("--data-raw '")]
                while not body[-1].endswith("'"):
                    cursor += 1
                    body.append(lines[cursor])
                body[-1] = body[-1][:-1]
                data = "\n".join(body)
                cursor += 1
            else:
                raise AssertionError(f"unknown curl option: {option}")
        http_line = None
        response = None
        for ahead in range(cursor, min(cursor + 6, len(lines))):
            if lines[ahead] == "HTTP Request":
                method, url = lines[ahead + 1].split(" ", 1)
                http_line = (method, url)
        for ahead in range(cursor, len(lines)):
            if lines[ahead].startswith("curl "):
                break
            if lines[ahead].startswith("The above command returns JSON"):
                response = _json_block(lines, ahead + 1)
                break
        examples.append(Example(lines[index - 1], found.group(1), found.group(2), headers, data, http_line, response))
    return examples


def reference_text() -> str:
    return (SHARED if SHARED.exists() else EMBEDDED).read_text(encoding="utf-8")


def test_embedded_copy_has_the_same_examples() -> None:
    """data/ holds the reference's examples unchanged (when the shared reference is here to compare)."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not present: nothing to compare the embedded copy with")
    assert parse_examples(EMBEDDED.read_text(encoding="utf-8")) == parse_examples(SHARED.read_text(encoding="utf-8"))


FIELD_KINDS = {
    "case_ids": "case",
    "case_id": "case",
    "include_ids": "case",
    "exclude_ids": "case",
    "ids": "case",
    "client_ids": "client",
    "client_id": "client",
    "campaign_id": "campaign",
    "case_list_id": "case_list",
}
CONTAINER_KINDS = {"clients": "client", "cases": "case", "lists": "case_list"}
PATH_KINDS = {"clients": "client", "cases": "case"}


class IdMap:
    """The reference's example ids, each backed by a record of the emulator."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ids: dict[tuple[str, int], int] = {}
        self.seeds = 0

    async def get(self, kind: str, example_id: int) -> int:
        if (kind, example_id) not in self.ids:
            self.ids[(kind, example_id)] = await self._seed(kind)
        return self.ids[(kind, example_id)]

    async def _seed(self, kind: str) -> int:
        self.seeds += 1
        n = self.seeds
        if kind == "client":
            body: dict[str, Any] = {"external_source": "seed", "external_source_id": f"s{n}", "first_name": "S"}
            return int((await self.api.ok("POST", "/v1/clients", {**body, "last_name": "Seed"}))["id"])
        if kind == "case":
            body = {"case_number": f"SEED-{n}", "external_source": "seed", "external_source_id": f"s{n}"}
            return int((await self.api.ok("POST", "/v1/cases", {**body, "status": "seed", "type": "seed"}))["id"])
        if kind == "case_list":
            return int((await self.api.ok("POST", "/v1/case_lists", {"name": f"seed {n}", "filter": {}}))["id"])
        campaign = {
            "name": f"seed {n}",
            "agent_id": "seed",
            "case_list_id": await self._seed("case_list"),
            "send_sms_before_call": False,
            "sms_before_call_text": "seed",
        }
        return int((await self.api.ok("POST", "/v1/campaigns", campaign))["id"])

    async def swap(self, value: Any, kind: str | None = None) -> Any:
        """``value`` with every id in an id-bearing position replaced."""
        if isinstance(value, dict):
            swapped: dict[str, Any] = {}
            for key, item in value.items():
                if key == "id" and kind is not None:
                    swapped[key] = await self.get(kind, item)
                elif key in FIELD_KINDS:
                    swapped[key] = await self.swap(item, FIELD_KINDS[key])
                elif key in CONTAINER_KINDS:
                    swapped[key] = [await self.swap(entry, CONTAINER_KINDS[key]) for entry in item]
                else:
                    swapped[key] = item  # filter ids are lookups: unknown ones simply match nothing
            return swapped
        if isinstance(value, list):
            return [await self.swap(item, kind) for item in value]
        if isinstance(value, int) and not isinstance(value, bool) and kind is not None:
            return await self.get(kind, value)
        return value


def target(example: Example) -> tuple[str, str, str]:
    """Method, path and host to use: the curl's, unless its "HTTP Request" line names another route."""
    method, url = example.method, example.url
    if example.http_line is not None:
        line_method, line_url = example.http_line
        pattern = re.escape(urlsplit(line_url).path).replace(r"\{id\}", r"\d+")
        if line_method != method or not re.fullmatch(pattern, urlsplit(url).path):
            method, url = line_method, line_url
    parts = urlsplit(url)
    return method, parts.path + (f"?{parts.query}" if parts.query else ""), parts.netloc


async def test_every_reference_example(api: Api) -> None:
    """Each curl example works against the emulator (the two malformed ones get a clean 400)."""
    examples = parse_examples(reference_text())
    assert len(examples) == 20
    ids = IdMap(api)
    outcomes: dict[str, int] = {}
    for example in examples:
        method, path, host = target(example)
        key_header = "X-Public-Api-Key" if host == CALLS_HOST else "X-API-KEY"
        key = api.emulator.calls_api_key if host == CALLS_HOST else api.emulator.api_key
        headers = {name: value for name, value in example.headers.items() if "api-key" not in name.lower()}
        assert any("{{apikey}}" in value for value in example.headers.values())
        headers[key_header] = key
        path_id = re.fullmatch(r"/v1/(clients|cases)/(\d+)", path)
        example_path_id = None
        if path_id:
            example_path_id = (PATH_KINDS[path_id.group(1)], int(path_id.group(2)))
            path = f"/v1/{path_id.group(1)}/{await ids.get(*example_path_id)}"
        data = example.data
        if example.title in MALFORMED:
            assert data is not None
            with pytest.raises(ValueError, match="Expecting property name"):
                json.loads(data)
        elif data is not None:
            body = await ids.swap(json.loads(data))
            if path.startswith("/v1/cases/communication/"):
                # A message goes to a client of the case: link the two first.
                client = dict(await api.ok("GET", f"/v1/clients/{body['client_id']}"))
                client["case_ids"] = sorted({*client["case_ids"], body["case_id"]})
                await api.ok("PUT", f"/v1/clients/{body['client_id']}", client)
            data = json.dumps(body)
        reply = await api.call(method, path, data=data, headers=headers, key=None)
        outcomes[example.title] = reply.status
        if example.title in MALFORMED:
            assert reply.status == 400, example.title
            assert reply.body["message"].startswith("malformed JSON")
            # Repaired (double quotes, no trailing comma), the same example is accepted.
            assert data is not None
            repaired = json.loads(re.sub(r",(\s*})", r"\1", data.replace("'", '"')))
            fixed = await api.call(method, path, await ids.swap(repaired), headers=headers, key=None)
            assert fixed.status == 200, (example.title, fixed.body)
            continue
        assert reply.status == 200, (example.title, reply.body)
        await record_ids(ids, example, reply.body, path, method, example_path_id)
        check_shape(example, reply.body)
    assert sorted(title for title, status in outcomes.items() if status == 400) == sorted(MALFORMED)
    assert [item["kind"] for item in api.emulator.store.outbox] == ["sms", "email", "call"]
    assert (await api.ok("GET", "/v1/campaigns"))[-1]["start_time"] == "2006-01-02T15:04:05Z07:00"


async def record_ids(ids: IdMap, example: Example, body: Any, path: str, method: str, path_id: Any) -> None:
    """Remember which emulator ids the example's response ids stand for; forget deleted ones."""
    if method == "DELETE" and path_id is not None:
        del ids.ids[path_id]
    response = example.response
    kinds = {"/v1/clients": "client", "/v1/cases": "case", "/v1/case_lists": "case_list", "/v1/campaigns": "campaign"}
    if method == "POST" and path in kinds and isinstance(response, dict) and "id" in response:
        ids.ids[(kinds[path], response["id"])] = body["id"]
    for container, kind in CONTAINER_KINDS.items():
        if isinstance(response, dict) and container in response and container in body:
            for shown, actual in zip(response[container], body[container], strict=True):
                if "id" in shown and "id" in actual:
                    ids.ids[(kind, shown["id"])] = actual["id"]


def check_shape(example: Example, body: Any) -> None:
    """The response has every key the reference's sample response shows."""
    shown = example.response
    if isinstance(shown, dict) and isinstance(body, dict):
        for key, value in shown.items():
            assert key in body, (example.title, key)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for shown_item, item in zip(value, body[key], strict=False):
                    assert set(shown_item) <= set(item), (example.title, key)
    elif isinstance(shown, list):
        assert isinstance(body, list)
        if shown and body and isinstance(shown[0], dict):
            assert set(shown[0]) - {"agent", "stats"} <= set(body[0])
