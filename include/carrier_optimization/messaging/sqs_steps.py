"""The SQS protocol of a poke or a watcher round, sans I/O: the calls to make, run on a boto3 client.

Step generators yield :class:`SqsCall` values and expect each call's response to be sent back (or its
exception thrown in); :func:`run_steps` and :func:`arun_steps` drive them with a boto3 or aiobotocore
client. The steps: receive (:func:`receive_params`), release the messages left for others
(:func:`release_entries`), dead-letter malformed ones (:func:`dead_letter_steps`), delete the taken one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, NamedTuple

from include.carrier_optimization.messaging.attributes import (
    ERROR_REASON,
    REQUEST_ATTRIBUTE_NAMES,
    Malformed,
)

__all__ = [
    "SqsCall",
    "arun_steps",
    "dead_letter_params",
    "dead_letter_steps",
    "poke_steps",
    "receive_params",
    "release_entries",
    "release_steps",
    "run_steps",
]

log = logging.getLogger(__name__)

#: SQS allows at most 10 message attributes per message.
SQS_MAX_ATTRIBUTES = 10
#: SQS batch calls (ChangeMessageVisibilityBatch, DeleteMessageBatch) take at most 10 entries.
SQS_MAX_BATCH = 10


class SqsCall(NamedTuple):
    """One SQS client call asked for by a step generator."""

    method: str
    """Client method name (``receive_message``, ``delete_message``, ...)."""
    kwargs: dict[str, Any]
    """Its keyword arguments."""


def receive_params(
    *, queue_url: str, max_messages: int, wait_time_seconds: int, visibility_timeout: int | None
) -> dict[str, Any]:
    """``receive_message`` keyword arguments of one poke, with all message attributes.

    ``visibility_timeout=None`` leaves the queue's own visibility timeout.
    """
    params: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": max_messages,
        "WaitTimeSeconds": wait_time_seconds,
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        params["VisibilityTimeout"] = visibility_timeout
    return params


def release_entries(messages: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """``ChangeMessageVisibilityBatch`` entries making ``messages`` visible again at once.

    Returns
    -------
    list of lists of dicts
        Chunks of at most 10 entries ``{"Id", "ReceiptHandle", "VisibilityTimeout": 0}``; entry ids are
        positional (``m0``, ``m1``, ...) so they are unique and valid batch ids; map them back with the
        same index into ``messages``.
    """
    entries = [
        {"Id": f"m{index}", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
        for index, message in enumerate(messages)
    ]
    return [entries[start : start + SQS_MAX_BATCH] for start in range(0, len(entries), SQS_MAX_BATCH)]


def release_steps(
    messages: Sequence[Mapping[str, Any]], *, queue_url: str, logger: Any = log
) -> Generator[SqsCall, Any, None]:
    """Make ``messages`` visible again at once, as SQS calls.

    A failed entry is logged: that message reappears after its visibility timeout.
    """
    for chunk in release_entries(messages):
        response = yield SqsCall("change_message_visibility_batch", {"QueueUrl": queue_url, "Entries": chunk})
        for failure in (response or {}).get("Failed", []):
            message = messages[int(failure["Id"][1:])]
            logger.warning(
                "Could not release message %s on %s (it reappears after its visibility timeout): %s",
                message.get("MessageId"),
                queue_url,
                failure,
            )


def poke_steps(
    receive: Mapping[str, Any],
    split: Callable[[list[dict[str, Any]]], Any],
    *,
    dead_letter_queue: str | None,
    logger: Any = log,
) -> Generator[SqsCall, Any, Any]:
    """One poke, the logic shared by the sensor and its trigger, as SQS calls to make.

    Receive one batch with ``receive`` (see :func:`receive_params`) and sort it with ``split``; then:

    - release the other valid messages at once (:func:`release_steps`);
    - move each malformed message away (:func:`dead_letter_steps`);
    - delete the accepted message (a failure here propagates, as does a failed receive).

    Parameters
    ----------
    receive : mapping
        ``receive_message`` keyword arguments; ``QueueUrl`` is the queue every other call works on.
    split : callable
        ``messages -> (accepted, others, malformed)``, e.g. ``messaging.filtering.split_batch`` with its
        filter bound.
    dead_letter_queue : str or None
        URL of the dead-letter queue; ``None`` or ``""`` to log and delete malformed messages.
    logger : logging.Logger
        Where to log (the caller's task or trigger logger).

    Returns
    -------
    accepted or None
        ``split(...).accepted``: the message taken (and deleted) with its request, or ``None``.
    """
    queue_url = receive["QueueUrl"]
    response = yield SqsCall("receive_message", dict(receive))
    batch = split(response.get("Messages", []))
    yield from release_steps(batch.others, queue_url=queue_url, logger=logger)
    if batch.others:
        logger.info("Released %d message(s) left for other runs", len(batch.others))
    for malformed in batch.malformed:
        yield from dead_letter_steps(
            malformed, queue_url=queue_url, dead_letter_queue=dead_letter_queue, logger=logger
        )
    if batch.accepted is None:
        return None
    yield SqsCall(
        "delete_message", {"QueueUrl": queue_url, "ReceiptHandle": batch.accepted.message["ReceiptHandle"]}
    )
    logger.info("Accepted and deleted message %s", batch.accepted.request.message_id)
    return batch.accepted


def run_steps(client: Any, steps: Generator[SqsCall, Any, Any]) -> Any:
    """Make the calls of a step generator on a boto3 SQS client; return the generator's result."""
    try:
        call = next(steps)
        while True:
            try:
                response = getattr(client, call.method)(**call.kwargs)
            except Exception as error:
                call = steps.throw(error)
            else:
                call = steps.send(response)
    except StopIteration as stop:
        return stop.value


async def arun_steps(client: Any, steps: Generator[SqsCall, Any, Any]) -> Any:
    """As :func:`run_steps`, awaiting each call of an aiobotocore SQS client."""
    try:
        call = next(steps)
        while True:
            try:
                response = await getattr(client, call.method)(**call.kwargs)
            except Exception as error:
                call = steps.throw(error)
            else:
                call = steps.send(response)
    except StopIteration as stop:
        return stop.value


def _clean_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the fields ``send_message`` accepts from a received attribute value."""
    return {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}


def dead_letter_params(malformed: Malformed, *, queue_url: str) -> dict[str, Any]:
    """``send_message`` keyword arguments moving a malformed message to the dead-letter queue.

    The original body and message attributes are kept, plus ``ErrorReason`` (String) holding the error
    text. SQS allows 10 attributes: if the original has 10 already, the attributes beyond the first 9
    (the legacy request attributes first, then by name) are dropped and named in ``ErrorReason``.

    Parameters
    ----------
    malformed : Malformed
        The message and its error, from ``messaging.filtering.split_batch``.
    queue_url : str
        URL of the dead-letter queue.

    Returns
    -------
    dict
        ``QueueUrl``, ``MessageBody``, ``MessageAttributes``.
    """
    original = malformed.message.get("MessageAttributes") or {}
    names = sorted(
        (name for name in original if name != ERROR_REASON),
        key=lambda name: (name not in REQUEST_ATTRIBUTE_NAMES, name),
    )
    kept, dropped = names[: SQS_MAX_ATTRIBUTES - 1], names[SQS_MAX_ATTRIBUTES - 1 :]
    reason = str(malformed.error)
    if dropped:
        reason += f" (attributes dropped for the dead-letter copy: {', '.join(dropped)})"
    attributes = {name: _clean_attribute(original[name]) for name in kept}
    attributes[ERROR_REASON] = {"DataType": "String", "StringValue": reason}
    body = malformed.message.get("Body")
    return {
        "QueueUrl": queue_url,
        "MessageBody": body if isinstance(body, str) and body else "(empty body)",
        "MessageAttributes": attributes,
    }


def dead_letter_steps(
    malformed: Malformed,
    *,
    queue_url: str,
    dead_letter_queue: str | None,
    logger: Any = log,
    kind: str = "malformed",
) -> Generator[SqsCall, Any, None]:
    """Move one message out of ``queue_url``, as SQS calls.

    Log it with its ``MessageId``; send it to ``dead_letter_queue`` when set (:func:`dead_letter_params`),
    else log its body and attributes; then delete it. When the dead-letter send fails the message stays
    on the queue; a failed delete is logged.

    Parameters
    ----------
    malformed : Malformed
        The message and the reason.
    queue_url : str
        The queue the message was received from.
    dead_letter_queue : str or None
        URL of the dead-letter queue; ``None`` or ``""`` to log and delete.
    logger : logging.Logger
        Where to log (the caller's task or trigger logger).
    kind : str
        What the message is, in the log lines (``malformed``, ``refused``).
    """
    logger.error(
        "%s message %s on %s: %s", kind.capitalize(), malformed.message_id, queue_url, malformed.error
    )
    if dead_letter_queue:
        try:
            yield SqsCall("send_message", dead_letter_params(malformed, queue_url=dead_letter_queue))
        except Exception:
            logger.exception(
                "Could not move message %s to dead-letter queue %s; left on the queue",
                malformed.message_id,
                dead_letter_queue,
            )
            return
        logger.info("Moved message %s to %s", malformed.message_id, dead_letter_queue)
    else:
        logger.error(
            "No dead-letter queue set: deleting message %s; body %r; attributes %r",
            malformed.message_id,
            malformed.message.get("Body"),
            malformed.message.get("MessageAttributes"),
        )
    receipt_handle = malformed.message.get("ReceiptHandle")
    if receipt_handle is None:
        logger.warning("Message %s has no ReceiptHandle: cannot delete it", malformed.message_id)
        return
    try:
        yield SqsCall("delete_message", {"QueueUrl": queue_url, "ReceiptHandle": receipt_handle})
    except Exception:
        logger.exception("Could not delete %s message %s", kind, malformed.message_id)
