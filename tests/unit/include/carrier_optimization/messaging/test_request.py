"""The one optimization request: its dict form, the trigger form's request and the portal-type check."""

from __future__ import annotations

import pytest

from include.carrier_optimization.messaging.request import Request, portal_type_problem, request_from_params


def test_the_dict_form_round_trips_and_ignores_unknown_keys():
    request = Request(tenant_id=1, service_provider_id=101, bill_period_id=7, session_id=3, has_synced=True)
    data = request.to_dict() | {"unknown": "ignored"}
    assert Request.from_dict(data) == request
    assert (
        Request.from_dict({"tenant_id": 1, "service_provider_id": 2, "portal_type_id": None}).portal_type_id
        == 0
    )


def test_a_request_naming_its_session_or_from_a_person_is_explicit():
    assert not Request(tenant_id=1, service_provider_id=101).explicit
    assert Request(tenant_id=1, service_provider_id=101, session_id=4).explicit
    assert Request(tenant_id=1, service_provider_id=101, manual=True).explicit


def test_an_unsupported_portal_type_is_refused_by_name():
    with pytest.raises(ValueError, match=r"`PortalTypeId` is 1 \(Mobility\)"):
        Request(tenant_id=1, service_provider_id=101, portal_type_id=1)


def test_the_trigger_form_gives_a_manual_request_with_empty_fields_as_none():
    params = {"service_provider_id": "101", "billing_period_id": "", "session_id": None, "has_synced": True}
    assert request_from_params(params, tenant_id=5) == {
        "tenant_id": 5,
        "service_provider_id": 101,
        "bill_period_id": None,
        "session_id": None,
        "has_synced": True,
        "portal_type_id": 0,
        "message_id": None,
        "manual": True,
    }


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"service_provider_id": 2}, r"missing the required request key\(s\) \['tenant_id'\]"),
        ({}, r"\['tenant_id', 'service_provider_id'\]"),
        (None, "must be a mapping of request fields, got NoneType"),
    ],
    ids=["no-tenant", "empty", "not-a-mapping"],
)
def test_from_dict_names_a_missing_required_key(data, match):
    with pytest.raises(ValueError, match=match):
        Request.from_dict(data)


def test_a_parsed_message_without_portal_type_and_one_with_0_are_the_same_request():
    """The legacy message leaves PortalTypeId out for M2M; it is 0 in the one request."""
    absent = {"tenant_id": 1, "service_provider_id": 2, "portal_type_id": None, "message_id": "m"}
    assert Request.from_dict(absent) == Request.from_dict(absent | {"portal_type_id": 0})
    assert Request.from_dict(absent).portal_type_id == 0


def test_supported_portal_types_give_no_problem():
    assert portal_type_problem(0) is None
    assert portal_type_problem(2) == "is 2 (CrossProvider): not supported yet, only 0 (M2M) is"
