"""Event-driven intake of SQS requests (docs/architecture.md), sans I/O, no Airflow.

The watcher trigger of a tenant queue runs :func:`watch_steps` in a loop; each taken message becomes
one event (:func:`event_payload`) and so one asset event that starts a DAG run. The run's first task
then claims one message of its events (:func:`plan_claims`) in the AMOP database by ``MessageId`` and
only then deletes it from SQS. Nothing is lost: a taken message stays on the queue (invisible for
``hold_seconds``) until a run has recorded it, so a triggerer that dies after receiving, or between
yielding the event and its being stored, leaves a message that reappears and is taken again. Nothing is
doubled: a redelivered copy carries the same ``MessageId``, which the next run finds recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from include.carrier_optimization.messaging.attributes import Malformed, MalformedMessageError
from include.carrier_optimization.messaging.filtering import sort_batch
from include.carrier_optimization.messaging.sqs_steps import SqsCall, dead_letter_steps, release_steps

log = logging.getLogger(__name__)

#: What a watcher does with one valid message: start a run, leave it for a waiting run, or dead-letter
#: it (any other text: the reason).
TAKE = "take"
LEAVE = "leave"


@dataclass(frozen=True)
class Taken:
    """A message a watcher took: it starts a run; it stays on the queue until that run claims it."""

    message: dict[str, Any]
    request: Any


def event_payload(taken: Taken, *, queue_url: str) -> dict[str, Any]:
    """The trigger event (and so the asset event's ``extra["payload"]``) of one taken message."""
    return {
        "status": "success",
        "queue_url": queue_url,
        "message_id": taken.request.message_id,
        "receipt_handle": taken.message["ReceiptHandle"],
        "request": taken.request.to_dict(),
    }


def watch_steps(
    receive: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any]], Any],
    decide: Callable[[Any], str],
    *,
    dead_letter_queue: str | None,
    logger: Any = log,
) -> Generator[SqsCall, Any, list[Taken]]:
    """One round of a watcher as SQS calls (run with ``sqs_steps.run_steps`` / ``arun_steps``).

    Receive one batch (``receive`` sets the ``VisibilityTimeout`` that holds taken messages); parse each
    message; ``decide(request)`` says :data:`TAKE`, :data:`LEAVE` (made visible again at once: a run's
    own wait takes it) or a reason to dead-letter it (e.g. another tenant's request on this queue).
    Malformed and refused messages go to ``dead_letter_queue`` with their ``ErrorReason`` and are
    deleted (``sqs_steps.dead_letter_steps``: a failed dead-letter send leaves the message on the
    queue). Taken messages are NOT deleted. Returns the taken messages, in receive order.
    """
    queue_url = receive["QueueUrl"]
    response = yield SqsCall("receive_message", dict(receive))
    _, valid, malformed = sort_batch(response.get("Messages", []), parse=parse, accept=lambda _: False)
    taken: list[Taken] = []
    leave: list[dict[str, Any]] = []
    for message in valid:
        request = parse(message)
        verdict = decide(request)
        if verdict == TAKE:
            taken.append(Taken(message, request))
        elif verdict == LEAVE:
            leave.append(message)
        else:
            attribute, reason = verdict.split(" ", 1)
            malformed.append(Malformed(message, MalformedMessageError(request.message_id, attribute, reason)))
    yield from release_steps(leave, queue_url=queue_url, logger=logger)
    for bad in malformed:
        yield from dead_letter_steps(
            bad, queue_url=queue_url, dead_letter_queue=dead_letter_queue, logger=logger, kind="refused"
        )
    for item in taken:
        logger.info("Took message %s (kept on the queue until its run claims it)", item.request.message_id)
    return taken


def tenant_verdict(request: Any, *, tenant_id: int, awaiting_sync: Callable[[int], bool]) -> str:
    """``decide`` of a tenant's request queue.

    Another tenant's request is dead-lettered (``TenantId`` reason); a sync completion (``HasSynced``
    with the session id) of a session whose run waits for it in ``sync_wait`` is left to that wait;
    every other request of the tenant starts a run.
    """
    if request.tenant_id != tenant_id:
        return f"TenantId is {request.tenant_id}, not {tenant_id}, the tenant of this queue"
    if request.session_id is not None and request.has_synced and awaiting_sync(request.session_id):
        return LEAVE
    return TAKE


def provider_verdict(request: Any, *, service_provider_ids: Sequence[int]) -> str:
    """``decide`` of a device-sync queue: requests of other providers are dead-lettered."""
    if request.service_provider_id in set(service_provider_ids):
        return TAKE
    return f"ServiceProviderId {request.service_provider_id} is not a provider of this queue's tenant"


@dataclass(frozen=True)
class ClaimPlan:
    """What a run does with the messages of its triggering events."""

    claim: dict[str, Any] | None
    """The event payload whose request the run carries (None: nothing new)."""
    duplicates: list[dict[str, Any]]
    """Payloads of messages another run took already: delete them."""
    release: list[dict[str, Any]]
    """Payloads of further new messages: make them visible again, each starts its own run."""


def plan_claims(
    payloads: Sequence[Mapping[str, Any]], *, taken_by: Callable[[str], str | None], run_id: str
) -> ClaimPlan:
    """Sort a run's event payloads: the first new message is the run's.

    Events repeating a ``MessageId`` (a redelivery yielded again before the run was created, or one
    event listed under an asset and an alias) count once, with the newest receipt handle.
    """
    newest: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        newest[str(payload["message_id"])] = dict(payload)
    claim: dict[str, Any] | None = None
    duplicates: list[dict[str, Any]] = []
    release: list[dict[str, Any]] = []
    for message_id, payload in newest.items():
        owner = taken_by(message_id)
        if owner is not None and owner != run_id:
            duplicates.append(payload)
        elif claim is None:
            claim = payload
        else:
            release.append(payload)
    return ClaimPlan(claim, duplicates, release)


def event_payloads(triggering_asset_events: Mapping[Any, Sequence[Any]]) -> list[dict[str, Any]]:
    """The SQS payloads of a run's triggering asset events, oldest first (other events ignored)."""
    found: list[tuple[str, int, dict[str, Any]]] = []
    for events in triggering_asset_events.values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            payload = extra.get("payload") if isinstance(extra, Mapping) else None
            if isinstance(payload, Mapping) and payload.get("message_id") and payload.get("request"):
                found.append((str(getattr(event, "timestamp", "")), len(found), dict(payload)))
    return [payload for _, _, payload in sorted(found, key=lambda item: item[:2])]
