"""Schemathesis hooks for tests/fuzz/run.sh: the rules of the description that its schemas cannot
state (they tie several fields together), applied to the requests it says must be accepted.
Requests meant to be invalid are left as generated."""

import time

import schemathesis
from schemathesis import GenerationMode

# The widest created_from..created_to window of the attempt listings (31 days and one hour), and
# the gregorian seconds of the Unix epoch.
MAXIMUM_RANGE = 2_682_000
GREGORIAN_EPOCH = 62_167_219_200
# Room for the seconds between generating a request and the server reading its clock.
CLOCK_MARGIN = 600

WINDOWED = {"listAttempts", "listWebhookAttempts"}

# The broker's limit on a routing key, the fields POST /v2/events builds keys of, and the length a
# field is cut to when an event's key would pass the limit (at most 12 bytes a character once
# encoded, so that every key then fits).
MAX_ROUTING_KEY_BYTES = 255
KEYED_FIELDS = ("Event-Name", "Call-ID", "Origination-Call-ID", "Unique-ID", "Database", "Type", "ID",
                "Message-ID", "Route-Type")
CUT = 5
KNOWN_NAMES = {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_DESTROY",
               "CHANNEL_DISCONNECTED", "PARK_PARKED", "PARK_RETRIEVED", "PARK_ABANDONED", "inbound"}


def _integer(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _positive(case):
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _encoded_length(text):
    """The length of a routing key segment once encoded as the server encodes it."""
    plain = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~_ ")
    return sum(1 if byte in plain else 3 for byte in text.encode("utf-8", "surrogatepass"))


def _key_length(event):
    """An upper bound of the routing key the server builds for `event` (every segment encoded)."""
    texts = [value for key, value in event.items() if key in KEYED_FIELDS and isinstance(value, str)]
    return sum(_encoded_length(text) + 1 for text in texts) + len("call.")


def _fit_routing_key(event):
    """Cuts the fields an event's routing key is built of when that key would pass the limit."""
    # A notification's key is fixed by its type.
    if not isinstance(event, dict) or event.get("Event-Category") == "notification":
        return
    if _key_length(event) <= MAX_ROUTING_KEY_BYTES:
        return
    for key in KEYED_FIELDS:
        value = event.get(key)
        if isinstance(value, str) and len(value) > CUT and value not in KNOWN_NAMES:
            event[key] = value[:CUT]


def _events(body):
    """The events of a POST /v2/events body: one, an array, or either in a data envelope."""
    if isinstance(body, dict) and set(body) == {"data"}:
        body = body["data"]
    return body if isinstance(body, list) else [body]


@schemathesis.hook
def map_case(context, case):
    """Applies the rule of the operation the case is for; see the two below."""
    operation = context.operation.definition.raw.get("operationId")
    if not _positive(case):
        return case
    if operation in WINDOWED:
        return _keep_in_window(case)
    if operation == "ingestEvents":
        for event in _events(case.body):
            _fit_routing_key(event)
    return case


def _keep_in_window(case):
    """Keeps a valid request to an attempt listing inside the window the listing allows.

    created_from and created_to are each any integer, but together they must span at most
    MAXIMUM_RANGE seconds, created_to defaulting to now: a request the description accepts moves
    created_from into that window."""
    if not case.query:
        return case
    start = _integer(case.query.get("created_from"))
    if start is None:
        return case
    end = _integer(case.query.get("created_to"))
    span = MAXIMUM_RANGE
    if end is None:
        end = int(time.time()) + GREGORIAN_EPOCH
        span -= CLOCK_MARGIN
    if not 0 <= end - start <= span:
        case.query["created_from"] = end - (end - start) % (span + 1)
    return case
