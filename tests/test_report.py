from pipeline.io.report import build_stats


def test_funnel_in_stage_order_and_accounting():
    stats = build_stats(10, 4, [(("fetch", "not_found"), 2), (("read", "bad_id"), 1), (("license", "video"), 1),
                                (("fetch", "timeout"), 2)])
    assert [step["stage"] for step in stats["funnel"]][:7] == [
        "read", "license", "unique_id", "ledger", "verify_license", "blocklist", "fetch"]
    fetch = next(step for step in stats["funnel"] if step["stage"] == "fetch")
    assert fetch == {"stage": "fetch", "in": 8, "rejected": 4, "out": 4}
    assert stats["accounted"] and stats["rejected"] == 6
    assert stats["rejections_by_stage"]["fetch"] == {"not_found": 2, "timeout": 2}


def test_unaccounted_rows_are_flagged():
    assert not build_stats(10, 4, [(("fetch", "timeout"), 1)])["accounted"]
