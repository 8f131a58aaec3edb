"""Contract tests generated from Twilio's own OpenAPI spec of Video v1 (see README.md here).

Schemathesis reads the spec and, for every operation openrooms implements, sends valid and invalid
requests (the spec's examples, its coverage cases, then a bounded, derandomized fuzz run) to a real
`openrooms serve`. Every answer must be no 5xx, have a status the spec documents, be JSON and match
the spec's response schema; a request the spec calls invalid must be refused with a 4xx.

Twilio's spec documents only the success answer of each operation. Its errors are the legacy body
`{code, message, more_info, status}`: the spec is loaded with that body as each implemented
operation's `4XX` answer, so a refusal is checked against a schema too (`load_spec`).

Generated path parameters are random SIDs, mostly answered 404. So each case goes a second time to
the path of real resources put in place before the run, and one explicit request per operation
checks its documented success answer field by field. A few requests at the edges of what the spec
allows, which a bounded run reaches only by luck, are sent explicitly. What openrooms does not
build yet (Compositions, CompositionHooks, CompositionSettings, RecordingSettings, Transcriptions)
must answer 501 with Twilio's error body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.core import NOT_SET

if TYPE_CHECKING:
    from tests.contract.conftest import Service

SPEC = Path(__file__).with_name("twilio_video_v1.json")
FORM = "application/x-www-form-urlencoded"
MAX_EXAMPLES = 40
"""Fuzzed requests per operation, on top of the spec's examples and the coverage cases."""

ROOM = "/v1/Rooms/{Sid}"
PARTICIPANTS = "/v1/Rooms/{RoomSid}/Participants"
PARTICIPANT = PARTICIPANTS + "/{Sid}"
ANONYMIZE = PARTICIPANT + "/Anonymize"
OF_PARTICIPANT = "/v1/Rooms/{RoomSid}/Participants/{ParticipantSid}"
PUBLISHED, SUBSCRIBED = OF_PARTICIPANT + "/PublishedTracks", OF_PARTICIPANT + "/SubscribedTracks"
SUBSCRIBE_RULES = OF_PARTICIPANT + "/SubscribeRules"
RECORDING_RULES = "/v1/Rooms/{RoomSid}/RecordingRules"
ROOM_RECORDINGS = "/v1/Rooms/{RoomSid}/Recordings"
IMPLEMENTED = {
    ("POST", "/v1/Rooms"): 201,
    ("GET", "/v1/Rooms"): 200,
    ("GET", ROOM): 200,
    ("POST", ROOM): 202,
    ("GET", PARTICIPANTS): 200,
    ("GET", PARTICIPANT): 200,
    ("POST", PARTICIPANT): 202,
    ("POST", ANONYMIZE): 200,
    ("GET", PUBLISHED): 200,
    ("GET", PUBLISHED + "/{Sid}"): 200,
    ("GET", SUBSCRIBED): 200,
    ("GET", SUBSCRIBED + "/{Sid}"): 200,
    ("GET", SUBSCRIBE_RULES): 200,
    ("POST", SUBSCRIBE_RULES): 200,
    ("GET", RECORDING_RULES): 200,
    ("POST", RECORDING_RULES): 200,
    ("GET", ROOM_RECORDINGS): 200,
    ("GET", ROOM_RECORDINGS + "/{Sid}"): 200,
    ("DELETE", ROOM_RECORDINGS + "/{Sid}"): 204,
    ("GET", "/v1/Recordings"): 200,
    ("GET", "/v1/Recordings/{Sid}"): 200,
    ("DELETE", "/v1/Recordings/{Sid}"): 204,
}
"""Each implemented operation and the success status Twilio's spec documents for it."""

TWILIO_ERROR = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
    },
}
"""Twilio's legacy error body, with which every Twilio REST API refuses a request."""


def load_spec() -> dict[str, Any]:
    """Twilio's spec, with Twilio's error body as the `4XX` answer of each implemented operation.

    One correction: the spec types the filters of a subscribe rule as non-null strings, while its own
    examples of both SubscribeRules answers (and Twilio's fixtures) send the absent ones as null."""
    spec: dict[str, Any] = json.loads(SPEC.read_text())
    for method, path in IMPLEMENTED:
        responses = spec["paths"][path][method.lower()]["responses"]
        responses["4XX"] = {
            "description": "Twilio's error body",
            "content": {"application/json": {"schema": TWILIO_ERROR}},
        }
    rule = spec["components"]["schemas"]["video.v1.room.room_participant.room_participant_subscribe_rule"]
    for name, filter_ in rule["properties"]["rules"]["items"]["properties"].items():
        if name != "type":
            filter_["nullable"] = True
    return spec


SPEC_AS_LOADED = load_spec()
CONFIG = schemathesis.Config.from_dict(
    {
        "suppress-health-check": ["too_slow"],  # timing: the one check that depends on the machine's load
        "generation": {
            "mode": "all",  # valid and invalid requests
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,  # every request is authenticated; auth is tests/e2e's
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "negative_data_rejection": {"enabled": True},
        },
    }
)
schema = schemathesis.openapi.from_dict(SPEC_AS_LOADED, config=CONFIG).include(
    lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in IMPLEMENTED
)


# --- real resources -------------------------------------------------------------------------------


def call_with_tracks(service: Service) -> dict[str, str]:
    """A group room with alice (mic, cam) and bob (mic) connected; bob subscribes to alice's tracks."""
    name = f"contract-{uuid.uuid4().hex[:12]}"
    room = service.room(UniqueName=name)
    alice = service.connect(room, "alice")
    bob = service.connect(room, "bob", [{"name": "mic", "kind": "audio"}])
    mic, cam = alice["published_track_sids"]
    return {"name": name, "room": room, "alice": alice["sid"], "bob": bob["sid"], "mic": mic, "cam": cam}


@pytest.fixture(scope="module")
def known(service: Service) -> dict[tuple[str, str], dict[str, str]]:
    """Real path parameters for each operation with any.

    Operations that change what they address get resources of their own, so the others keep
    answering 200 whatever order the cases run in."""
    call = call_with_tracks(service)
    room, alice, bob, cam = call["room"], call["alice"], call["bob"], call["cam"]
    kicked, ruled, ended = call_with_tracks(service), call_with_tracks(service), call_with_tracks(service)
    service.complete(ended["room"])
    recording = call_with_tracks(service)
    recordings = service.recordings(recording["room"], completed=False)
    finished = call_with_tracks(service)
    deletable = service.recordings(finished["room"], completed=True)
    return {
        ("GET", ROOM): {"Sid": room},
        ("POST", ROOM): {"Sid": service.room()},
        ("GET", PARTICIPANTS): {"RoomSid": room},
        ("GET", PARTICIPANT): {"RoomSid": room, "Sid": alice},
        ("POST", PARTICIPANT): {"RoomSid": kicked["room"], "Sid": kicked["bob"]},
        ("POST", ANONYMIZE): {"RoomSid": ended["room"], "Sid": ended["alice"]},
        ("GET", PUBLISHED): {"RoomSid": room, "ParticipantSid": alice},
        ("GET", PUBLISHED + "/{Sid}"): {"RoomSid": room, "ParticipantSid": alice, "Sid": cam},
        ("GET", SUBSCRIBED): {"RoomSid": room, "ParticipantSid": bob},
        ("GET", SUBSCRIBED + "/{Sid}"): {"RoomSid": room, "ParticipantSid": bob, "Sid": cam},
        ("GET", SUBSCRIBE_RULES): {"RoomSid": room, "ParticipantSid": bob},
        ("POST", SUBSCRIBE_RULES): {"RoomSid": ruled["room"], "ParticipantSid": ruled["bob"]},
        ("GET", RECORDING_RULES): {"RoomSid": recording["room"]},
        ("POST", RECORDING_RULES): {"RoomSid": ruled["room"]},
        ("GET", ROOM_RECORDINGS): {"RoomSid": recording["room"]},
        ("GET", ROOM_RECORDINGS + "/{Sid}"): {"RoomSid": recording["room"], "Sid": recordings[0]},
        ("DELETE", ROOM_RECORDINGS + "/{Sid}"): {"RoomSid": finished["room"], "Sid": deletable[0]},
        ("GET", "/v1/Recordings/{Sid}"): {"Sid": recordings[-1]},
        ("DELETE", "/v1/Recordings/{Sid}"): {"Sid": deletable[-1]},
    }


# --- what the schema cannot say -------------------------------------------------------------------


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SPEC_AS_LOADED["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def documented_fields(method: str, path: str, status: int) -> tuple[str | None, set[str]]:
    """The fields of the resource the spec documents for a success answer, and for a list page
    the key of its items (else None)."""
    content = SPEC_AS_LOADED["paths"][path][method.lower()]["responses"][str(status)].get("content")
    if content is None:
        return None, set()
    properties = resolve(content["application/json"]["schema"])["properties"]
    if "meta" in properties:
        (key,) = set(properties) - {"meta"}
        return key, set(resolve(properties[key]["items"])["properties"])
    return None, set(properties)


def assert_twilio_answer(case: Case, status: int, body: Any) -> None:
    """An error's `status` and `more_info` match its HTTP status and code, and a success answer
    carries every field the spec lists (Twilio sends an absent value as null, never leaves it out)."""
    if status >= 400:
        assert body["status"] == status, body
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}", body
        return
    if (case.method.upper(), case.path) not in IMPLEMENTED:
        return
    key, fields = documented_fields(case.method, case.path, status)
    for resource in body[key] if key is not None else [body] if fields else []:
        missing = sorted(fields - set(resource))
        assert not missing, f"{case.method} {case.path} answers without {missing}, which Twilio's spec lists"


def send(case: Case, service: Service) -> tuple[int, Any]:
    """Send `case`, run the checks, and return the answer's status and JSON body (None if empty)."""
    response = case.call_and_validate(base_url=service.base_url, auth=service.auth)
    body = response.json() if response.content else None
    assert_twilio_answer(case, response.status_code, body)
    return response.status_code, body


# --- the generated requests -----------------------------------------------------------------------


@schema.parametrize()
def test_every_answer_to_generated_requests_conforms_to_twilios_spec(
    case: Case, service: Service, known: dict[tuple[str, str], dict[str, str]]
) -> None:
    send(case, service)
    real = known.get((case.method.upper(), case.path))
    if real is not None:
        again = case.derive()
        again.path_parameters = dict(real)
        send(again, service)


# --- one documented success per operation ---------------------------------------------------------


@dataclass
class Request:
    path_parameters: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def case(self, method: str, path: str) -> Case:
        return schema[path][method].Case(
            path_parameters=self.path_parameters,
            query=self.query,
            body=NOT_SET if self.body is None else self.body,
            media_type=None if self.body is None else FORM,
        )


def success_request(service: Service, operation: tuple[str, str]) -> Request:
    """A request the operation must answer with its documented success, on resources of its own."""
    c = call_with_tracks(service)
    room, alice, bob = c["room"], c["alice"], c["bob"]

    def recording(completed: bool) -> str:
        return service.recordings(room, completed=completed)[0]

    def recorded(request: Request) -> Request:
        recording(False)
        return request

    def ended() -> Request:
        service.complete(room)
        return Request({"RoomSid": room, "Sid": alice})

    rules = json.dumps([{"type": "exclude", "all": True}, {"type": "include", "kind": "audio"}])
    requests: dict[tuple[str, str], Callable[[], Request]] = {
        ("POST", "/v1/Rooms"): lambda: Request(body={
            "UniqueName": f"created-{uuid.uuid4().hex[:12]}", "Type": "group", "MaxParticipants": 7,
            "VideoCodecs": ["VP8", "H264"], "RecordParticipantsOnConnect": False, "EmptyRoomTimeout": 3,
            "StatusCallback": "http://127.0.0.1:9/status", "StatusCallbackMethod": "GET",
        }),
        ("GET", "/v1/Rooms"): lambda: Request(query={"UniqueName": c["name"], "Status": "in-progress"}),
        ("GET", ROOM): lambda: Request({"Sid": room}),
        ("POST", ROOM): lambda: Request({"Sid": room}, body={"Status": "completed"}),
        ("GET", PARTICIPANTS): lambda: Request({"RoomSid": room}),
        ("GET", PARTICIPANT): lambda: Request({"RoomSid": room, "Sid": alice}),
        ("POST", PARTICIPANT): lambda: Request({"RoomSid": room, "Sid": bob}, body={"Status": "disconnected"}),
        ("POST", ANONYMIZE): ended,
        ("GET", PUBLISHED): lambda: Request({"RoomSid": room, "ParticipantSid": alice}),
        ("GET", PUBLISHED + "/{Sid}"): lambda: Request({"RoomSid": room, "ParticipantSid": alice, "Sid": c["cam"]}),
        ("GET", SUBSCRIBED): lambda: Request({"RoomSid": room, "ParticipantSid": bob}),
        ("GET", SUBSCRIBED + "/{Sid}"): lambda: Request({"RoomSid": room, "ParticipantSid": bob, "Sid": c["cam"]}),
        ("GET", SUBSCRIBE_RULES): lambda: Request({"RoomSid": room, "ParticipantSid": bob}),
        ("POST", SUBSCRIBE_RULES): lambda: Request({"RoomSid": room, "ParticipantSid": bob}, body={"Rules": rules}),
        ("GET", RECORDING_RULES): lambda: recorded(Request({"RoomSid": room})),
        ("POST", RECORDING_RULES): lambda: Request(
            {"RoomSid": room}, body={"Rules": json.dumps([{"type": "include", "kind": "audio"}])}
        ),
        ("GET", ROOM_RECORDINGS): lambda: recorded(Request({"RoomSid": room})),
        ("GET", ROOM_RECORDINGS + "/{Sid}"): lambda: Request({"RoomSid": room, "Sid": recording(True)}),
        ("DELETE", ROOM_RECORDINGS + "/{Sid}"): lambda: Request({"RoomSid": room, "Sid": recording(True)}),
        ("GET", "/v1/Recordings"): lambda: recorded(Request(query={"GroupingSid": [room]})),
        ("GET", "/v1/Recordings/{Sid}"): lambda: Request({"Sid": recording(False)}),
        ("DELETE", "/v1/Recordings/{Sid}"): lambda: Request({"Sid": recording(True)}),
    }  # fmt: skip
    return requests[operation]()


@pytest.mark.parametrize("operation", sorted(IMPLEMENTED), ids=" ".join)
def test_each_operation_answers_its_documented_success_with_every_field_of_the_spec(
    operation: tuple[str, str], service: Service
) -> None:
    method, path = operation
    case = success_request(service, operation).case(method, path)
    status, body = send(case, service)
    assert status == IMPLEMENTED[operation], body
    key, _ = documented_fields(method, path, status)
    if key is not None:
        assert body[key], f"the page of {key} holds the resource put in place for it"


# --- valid and invalid values a bounded run reaches only by luck ----------------------------------

DATE_FILTERED = [("GET", "/v1/Rooms"), ("GET", PARTICIPANTS), ("GET", "/v1/Recordings"), ("GET", ROOM_RECORDINGS)]
EDGE_DATE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0712-11-10T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
]
"""RFC 3339 date-times (the spec's `format: date-time`) at the edges: years before 1000 (printed
with fewer than four digits unless padded), and offsets that move the instant before year 1 or
after year 9999 in UTC."""


@pytest.mark.parametrize("at", EDGE_DATE_TIMES)
@pytest.mark.parametrize("operation", DATE_FILTERED, ids=" ".join)
def test_date_filters_accept_every_date_time_the_spec_allows(
    operation: tuple[str, str], at: str, service: Service, known: dict[tuple[str, str], dict[str, str]]
) -> None:
    method, path = operation
    real = known.get(operation, {})
    for name in ("DateCreatedAfter", "DateCreatedBefore"):
        status, body = send(Request(real, query={name: at}).case(method, path), service)
        assert status == 200, f"{name}={at}: {body}"


NESTED_DEEPER_THAN_ANY_RULE = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    ("operation", "parameter", "code"),
    [(("POST", "/v1/Rooms"), "RecordingRules", 53120), (("POST", RECORDING_RULES), "Rules", 53120),
     (("POST", SUBSCRIBE_RULES), "Rules", 53215)],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)  # fmt: skip
def test_rules_nested_deeper_than_any_rule_are_refused_as_invalid_rules(
    operation: tuple[str, str], parameter: str, code: int, service: Service
) -> None:
    method, path = operation
    c = call_with_tracks(service)
    path_parameters = {"RoomSid": c["room"], "ParticipantSid": c["bob"]} if "{" in path else {}
    request = Request(path_parameters, body={parameter: NESTED_DEEPER_THAN_ANY_RULE})
    status, body = send(request.case(method, path), service)
    assert (status, body["code"]) == (400, code), body


# --- what is not built yet ------------------------------------------------------------------------

NOT_IMPLEMENTED = sorted(
    (method.upper(), path)
    for path, item in SPEC_AS_LOADED["paths"].items()
    for method in item
    if method in ("get", "post", "delete") and (method.upper(), path) not in IMPLEMENTED
)
SIDS = {"Sid": "CJ" + "0" * 32, "RoomSid": "RM" + "0" * 32, "Ttid": "GT" + "0" * 32}


NOT_BUILT_YET = (
    "/v1/Compositions",
    "/v1/CompositionHooks",
    "/v1/CompositionSettings/",
    "/v1/RecordingSettings/",
    "/v1/Rooms/{RoomSid}/Transcriptions",
)


def test_every_operation_of_the_spec_is_implemented_or_one_of_those_not_built_yet() -> None:
    assert [operation for operation in NOT_IMPLEMENTED if not operation[1].startswith(NOT_BUILT_YET)] == []


@pytest.mark.parametrize("operation", NOT_IMPLEMENTED, ids=" ".join)
def test_operations_not_built_yet_answer_501_with_a_twilio_error(operation: tuple[str, str], service: Service) -> None:
    method, path = operation
    response = service.request(method, path.format(**SIDS))
    assert response.status_code == 501, response.text
    body = response.json()
    assert (body["code"], body["status"]) == (20501, 501)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20501"
    assert "not implemented" in body["message"]
