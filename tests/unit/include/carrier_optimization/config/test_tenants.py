"""Tenant configuration: dags/tenants.yaml loads, every validation branch names tenant and field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from include.carrier_optimization.config.tenants import (
    ENGINES,
    PORTAL_TYPES,
    ServiceProviderConfig,
    TenantConfig,
    TenantConfigError,
    load_tenants,
    parse_tenants,
)

ROOT = Path(__file__).resolve().parents[5]
TENANTS_YAML = ROOT / "dags" / "tenants.yaml"

MINIMAL = {"slug": "initech", "tenant_id": 7, "service_providers": [{"id": 301, "name": "Jasper"}]}


def _doc(**overrides) -> dict:
    tenant = copy.deepcopy(MINIMAL)
    tenant.update(overrides)
    return {"tenants": [tenant]}


class TestTenantsYaml:
    @pytest.fixture(autouse=True)
    def _tenants(self):
        self.tenants = {t.slug: t for t in load_tenants(TENANTS_YAML)}

    def test_loads_every_tenant_sorted_by_slug(self):
        raw = yaml.safe_load(TENANTS_YAML.read_text(encoding="utf-8"))
        assert list(self.tenants) == sorted(t["slug"] for t in raw["tenants"])
        assert [t.slug for t in load_tenants(str(TENANTS_YAML))] == list(self.tenants)

    def test_acme(self):
        acme = self.tenants["acme"]
        assert acme.tenant_id == 1 and acme.name == "Acme Logistics"
        assert acme.dag_id == "carrier_optimization__acme"
        assert acme.schedule == "15 * * * *" and acme.billing_time_zone == "America/Chicago"
        assert (acme.request_queue, acme.device_sync_queue, acme.dead_letter_queue) == (
            "carrier-optimization-acme",
            "device-sync-acme",
            "carrier-optimization-acme-dlq",
        )
        assert acme.alert_emails == ("telecom-ops@acme.example",)
        [sp] = acme.service_providers
        assert (sp.id, sp.name, sp.integration, sp.uses_proration, sp.start_hour) == (
            101,
            "Jasper AT&T",
            "Jasper",
            True,
            6,
        )
        assert (acme.engine, acme.batch_size, acme.queues_per_instance, acme.time_budget_seconds) == (
            "best",
            2000,
            5,
            600,
        )
        assert acme.extra == {"sample_sims": 5000}

    def test_globex_providers_and_defaults(self):
        globex = self.tenants["globex"]
        assert [
            (sp.id, sp.integration, sp.uses_proration, sp.start_hour) for sp in globex.service_providers
        ] == [
            (201, "Rogers", False, 2),
            (202, "TMobileJasper", True, 4),
        ]
        assert (globex.batch_size, globex.time_budget_seconds) == (1000, 300)

    def test_every_tenant_is_schedulable(self):
        from zoneinfo import ZoneInfo

        for tenant in self.tenants.values():
            ZoneInfo(tenant.billing_time_zone)  # raises for an unknown zone
            assert all(sp.start_hour is not None for sp in tenant.service_providers), tenant.slug


class TestParseDefaults:
    def test_minimal_tenant_gets_the_documented_defaults(self):
        [tenant] = parse_tenants(_doc())
        assert tenant == TenantConfig(
            slug="initech",
            tenant_id=7,
            name="initech",
            service_providers=(ServiceProviderConfig(id=301, name="Jasper"),),
            schedule=None,
            billing_time_zone="UTC",
            request_queue="carrier-optimization-initech",
            device_sync_queue="device-sync-initech",
            dead_letter_queue="carrier-optimization-initech-dlq",
            alert_emails=(),
            engine="best",
            batch_size=500,
            queues_per_instance=5,
            time_budget_seconds=600,
            extra={},
        )
        sp = tenant.service_providers[0]
        assert (sp.integration, sp.uses_proration, sp.start_hour) == ("Jasper", True, None)

    def test_unknown_keys_go_to_extra(self):
        [tenant] = parse_tenants(_doc(sample_sims=10, region="eu"))
        assert tenant.extra == {"sample_sims": 10, "region": "eu"}

    def test_numeric_strings_are_converted(self):
        [tenant] = parse_tenants(
            _doc(
                tenant_id="8",
                service_providers=[{"id": "9", "name": 12, "start_hour": "3"}],
                defaults={"batch_size": "100"},
            )
        )
        assert tenant.tenant_id == 8 and tenant.batch_size == 100
        assert tenant.service_providers == (ServiceProviderConfig(id=9, name="12", start_hour=3),)

    @pytest.mark.parametrize("engine", ENGINES)
    def test_every_engine_is_accepted(self, engine):
        assert parse_tenants(_doc(defaults={"engine": engine}))[0].engine == engine

    def test_portal_types(self):
        assert PORTAL_TYPES == {0: "M2M", 1: "Mobility", 2: "CrossProvider"}


INVALID = [
    pytest.param(_doc(slug="Acme"), r"tenant slug 'Acme' must match", id="slug-uppercase"),
    pytest.param(_doc(slug="_acme"), r"tenant slug '_acme' must match", id="slug-leading-underscore"),
    pytest.param(_doc(slug="ac-me"), r"tenant slug 'ac-me' must match", id="slug-dash"),
    pytest.param(_doc(slug="a" * 65), r"tenant slug 'a{65}' must match", id="slug-too-long"),
    pytest.param({"tenants": [{"tenant_id": 1}]}, r"tenant slug '' must match", id="slug-missing"),
    pytest.param(
        {"tenants": [copy.deepcopy(MINIMAL), copy.deepcopy(MINIMAL)]},
        r"tenant slug 'initech' appears twice",
        id="slug-duplicate",
    ),
    pytest.param(
        _doc(service_providers=[]),
        r"tenant initech: `service_providers` must list at least one provider",
        id="providers-empty",
    ),
    pytest.param(
        _doc(service_providers=None),
        r"tenant initech: `service_providers` must list at least one provider",
        id="providers-null",
    ),
    pytest.param(
        {"tenants": [{"slug": "initech", "tenant_id": 7}]},
        r"tenant initech: `service_providers` must list at least one provider",
        id="providers-missing",
    ),
    pytest.param(
        _doc(service_providers=[{"name": "Jasper"}]),
        r"tenant initech: service provider \{'name': 'Jasper'\} is invalid \('id'\)",
        id="provider-missing-id",
    ),
    pytest.param(
        _doc(service_providers=[{"id": 301}]),
        r"tenant initech: service provider \{'id': 301\} is invalid \('name'\)",
        id="provider-missing-name",
    ),
    pytest.param(
        _doc(service_providers=[{"id": "three", "name": "J"}]),
        r"tenant initech: service provider .*'three'.* is invalid \(invalid literal for int",
        id="provider-non-numeric-id",
    ),
    pytest.param(
        _doc(service_providers=[{"id": 301, "name": "J", "start_hour": "six"}]),
        r"tenant initech: service provider .*'start_hour': 'six'.* is invalid",
        id="provider-non-numeric-start-hour",
    ),
    pytest.param(
        _doc(service_providers=["Jasper"]),
        r"tenant initech: service provider 'Jasper' is invalid",
        id="provider-not-a-mapping",
    ),
    pytest.param(
        _doc(defaults={"engine": "greedy"}),
        r"tenant initech: engine 'greedy' must be one of best, optimal, legacy",
        id="engine-unknown",
    ),
    pytest.param(
        _doc(defaults={"batch_size": 0}),
        r"tenant initech: defaults\.batch_size must be > 0; got 0",
        id="batch-size-zero",
    ),
    pytest.param(
        _doc(defaults={"queues_per_instance": -1}),
        r"tenant initech: defaults\.queues_per_instance must be > 0; got -1",
        id="queues-per-instance-negative",
    ),
    pytest.param(
        _doc(defaults={"time_budget_seconds": 0}),
        r"tenant initech: defaults\.time_budget_seconds must be > 0; got 0",
        id="time-budget-zero",
    ),
]


class TestParseValidation:
    @pytest.mark.parametrize(("data", "match"), INVALID)
    def test_invalid(self, data, match):
        with pytest.raises(TenantConfigError, match=match):
            parse_tenants(data)

    @pytest.mark.parametrize(
        "data",
        [None, [], "tenants", {}, {"tenants": None}, {"tenants": {"slug": "acme"}}],
        ids=["null", "list", "string", "empty-mapping", "tenants-null", "tenants-mapping"],
    )
    def test_document_shape(self, data):
        with pytest.raises(
            TenantConfigError, match=r"^tenants\.yaml must hold a mapping with a list under `tenants`$"
        ):
            parse_tenants(data)

    def test_error_is_a_value_error(self):
        assert issubclass(TenantConfigError, ValueError)

    def test_empty_file(self, tmp_path):
        path = tmp_path / "tenants.yaml"
        path.write_text("# nothing yet\n", encoding="utf-8")
        with pytest.raises(TenantConfigError, match="list under `tenants`"):
            load_tenants(path)

    def test_load_validates(self, tmp_path):
        path = tmp_path / "tenants.yaml"
        path.write_text(yaml.safe_dump(_doc(defaults={"engine": "greedy"})), encoding="utf-8")
        with pytest.raises(TenantConfigError, match="tenant initech: engine 'greedy'"):
            load_tenants(path)

    def test_missing_tenant_id_names_tenant_and_field(self):
        data = {"tenants": [{k: v for k, v in MINIMAL.items() if k != "tenant_id"}]}
        with pytest.raises(TenantConfigError, match="tenant initech: .*tenant_id"):
            parse_tenants(data)

    def test_non_numeric_tenant_id_names_tenant_and_field(self):
        with pytest.raises(TenantConfigError, match="tenant initech: .*tenant_id"):
            parse_tenants(_doc(tenant_id="seven"))

    def test_non_numeric_default_names_tenant_and_field(self):
        with pytest.raises(TenantConfigError, match=r"tenant initech: defaults\.batch_size"):
            parse_tenants(_doc(defaults={"batch_size": "many"}))

    def test_single_alert_email_as_a_string(self):
        [tenant] = parse_tenants(_doc(alert_emails="ops@initech.example"))
        assert tenant.alert_emails == ("ops@initech.example",)

    @pytest.mark.parametrize("hour", [-1, 24], ids=["negative", "24"])
    def test_start_hour_out_of_range(self, hour):
        with pytest.raises(TenantConfigError, match="tenant initech: .*start_hour"):
            parse_tenants(_doc(service_providers=[{"id": 301, "name": "J", "start_hour": hour}]))

    def test_tenant_entry_not_a_mapping(self):
        with pytest.raises(TenantConfigError, match="tenant"):
            parse_tenants({"tenants": ["acme"]})


class TestProviderLookup:
    @pytest.fixture(autouse=True)
    def _tenant(self):
        self.tenant = {t.slug: t for t in load_tenants(TENANTS_YAML)}["globex"]

    def test_known_provider(self):
        sp = self.tenant.provider(202)
        assert sp.id == 202 and sp.name == "T-Mobile Jasper"

    def test_unknown_provider_lists_the_known_ids(self):
        with pytest.raises(
            TenantConfigError, match=r"^tenant globex: service provider 999 unknown; known: 201, 202$"
        ):
            self.tenant.provider(999)

    def test_lookup_is_by_integer_id(self):
        with pytest.raises(TenantConfigError, match="service provider 201 unknown"):
            self.tenant.provider("201")  # type: ignore[arg-type]
