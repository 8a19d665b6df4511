"""SQS queue names and URLs: tenants.yaml names queues, boto3 calls need URLs."""

from __future__ import annotations

from typing import Any


def resolve_queue_url(client: Any, name_or_url: str, *, create: bool = True) -> str:
    """URL of a queue given its name (created when missing and ``create``) or its URL (returned as is)."""
    if "://" in name_or_url:
        return name_or_url
    if not name_or_url:
        raise ValueError("`name_or_url` must name an SQS queue; got an empty string")
    if create:
        return client.create_queue(QueueName=name_or_url)["QueueUrl"]  # idempotent for equal attributes
    return client.get_queue_url(QueueName=name_or_url)["QueueUrl"]
