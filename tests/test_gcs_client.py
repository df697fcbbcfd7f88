"""pipeline/io/gcs_client.py: the gs:// calls Beam's FileSystems has no word for."""

from __future__ import annotations

from typing import Any

from pipeline.io import gcs_client


def test_the_folders_of_a_listing_of_several_pages_are_each_page_s(monkeypatch):
    """The store answers a listing by folder a thousand entries a page, folders and objects together, and a page may
    hold folders only: the folders of a work root holding more than a thousand are gathered from every page, not from
    the first one only (read so, a published release's cache named on a later page would never be removed)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="pass-test", credentials=AnonymousCredentials())  # asks nothing of a store
    pages = {None: {"prefixes": ["root/work/2026-01/"], "nextPageToken": "1"},
             "1": {"prefixes": ["root/work/2026-02/"], "items": [{"name": "root/work/stray", "bucket": "b"}],
                   "nextPageToken": "2"},
             "2": {"prefixes": ["root/work/2026-03/", "root/work/2025-12/"]}}
    asked: list[dict[str, Any]] = []

    def api_request(**request: Any) -> dict[str, Any]:
        asked.append(request["query_params"])
        return pages[request["query_params"].get("pageToken")]

    monkeypatch.setattr(client._connection, "api_request", api_request)
    monkeypatch.setattr(gcs_client, "storage_client", lambda path: client)
    assert gcs_client.folder_names("gs://b/root/work") == ["2025-12", "2026-01", "2026-02", "2026-03"]
    assert [request.get("pageToken") for request in asked] == [None, "1", "2"]
    assert all(request["prefix"] == "root/work/" and request["delimiter"] == "/" for request in asked), asked
