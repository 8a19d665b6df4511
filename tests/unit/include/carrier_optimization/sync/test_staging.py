"""Carrier pages into staging (SQLite, PostgreSQL): re-staged pages, checkpointed paging, resume."""

from __future__ import annotations

import pytest

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.sync import staging
from include.carrier_optimization.sync.carriers.jasper_payloads import DevicePage, MalformedPageError
from tests.unit.include.carrier_optimization.sync.conftest import (
    KEY,
    PAGE,
    SP,
    client_of,
    count,
    device,
    request_of,
    usage,
)


class TestStaging:
    def test_a_restaged_page_replaces_its_rows(self, engine):
        page = DevicePage(1, (device("a"), device("b")), False)
        staging.stage_page(engine, SP, page, [usage("a"), usage("b")])
        staging.stage_page(
            engine, SP, DevicePage(2, (device("b", status="DEACTIVATED"),), True), [usage("b", 9)]
        )
        staging.stage_page(engine, SP, page, [usage("a"), usage("b")])

        assert count(engine, s.jasper_device_staging) == 2
        assert count(engine, s.jasper_device_usage_staging) == 2
        assert count(engine, s.jasper_device_staging, ICCID="b", Status="ACTIVATED") == 1

    def test_a_batch_keeps_the_last_listing_of_an_iccid_listed_on_two_pages(self, engine):
        batch = [
            (DevicePage(1, (device("a"), device("b")), False), [usage("a"), usage("b", 1)]),
            (DevicePage(2, (device("b", status="DEACTIVATED"),), True), [usage("b", 7)]),
        ]
        assert staging.stage_pages(engine, SP, batch) == 2
        assert count(engine, s.jasper_device_staging, ICCID="b", Status="DEACTIVATED") == 1
        assert count(engine, s.jasper_device_usage_staging, ICCID="b", CtdDataUsage=7) == 1


class TestSyncPages:
    def test_all_pages_staged_with_usage_and_checkpointed(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        staging.stage_page(engine, SP, DevicePage(1, (device("stale"),), True), [])

        result = staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)

        pages = sim.page_count()
        assert (result.done, result.pages, result.devices, result.next_page) == (True, pages, 650, pages + 1)
        assert count(engine, s.jasper_device_staging, ICCID="stale") == 0  # page 1 of a new request clears
        assert count(engine, s.jasper_device_staging) == count(engine, s.jasper_device_usage_staging) == 650
        assert store.get(KEY) == {
            "message_id": "m-1",
            "next_page": pages + 1,
            "pages": pages,
            "devices": 650,
            "done": True,
        }

    def test_a_failed_page_resumes_from_the_checkpoint(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        sim.faults.malformed_page(5, "missing_iccid", times=1)
        with pytest.raises(MalformedPageError, match="Jasper device page 5"):
            staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert store.get(KEY)["next_page"] == 5
        assert count(engine, s.jasper_device_staging) == 4 * PAGE

        result = staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)

        assert (result.resumed_from, result.done, result.devices) == (5, True, 650)
        assert [sim.count(f"page:{n}") for n in range(1, 7)] == [1, 1, 1, 1, 2, 1]
        assert count(engine, s.jasper_device_staging) == 650

    def test_pages_are_committed_in_batches_with_one_checkpoint_each(self, engine, sim, monkeypatch):
        store = DatabaseCheckpointStore(engine)
        puts = []
        real_put = store.put
        monkeypatch.setattr(
            store,
            "put",
            lambda key, value, **kw: (puts.append(value["next_page"]), real_put(key, value, **kw)),
        )
        result = staging.sync_pages(
            engine, client_of(sim), request_of(), store=store, key=KEY, commit_every=200
        )
        assert result.done and puts == [1, 6, 11, 16, 18]  # 5 pages of 40 per commit, then pages 16-17

    def test_page_limit_then_continue(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        first = staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY, max_pages=3)
        second = staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert (first.done, first.pages_this_call, first.next_page) == (False, 3, 4)
        assert (second.done, second.resumed_from, second.devices) == (True, 4, 650)

    def test_a_new_request_does_not_reuse_the_checkpoint_of_another(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        store.put(KEY, {"message_id": "older", "next_page": 99, "pages": 98, "devices": 1, "done": False})
        result = staging.sync_pages(engine, client_of(sim), request_of("m-2"), store=store, key=KEY)
        assert (result.resumed_from, result.pages, result.done) == (None, sim.page_count(), True)

    def test_a_finished_request_pages_nothing(self, engine, sim):
        store = DatabaseCheckpointStore(engine)
        staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        again = staging.sync_pages(engine, client_of(sim), request_of(), store=store, key=KEY)
        assert (again.pages_this_call, again.done) == (0, True)
        assert sim.count("page:1") == 1
