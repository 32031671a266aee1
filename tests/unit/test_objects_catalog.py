"""Which version a restore "as of T" picks, and the pure helpers around object backups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drkit.adapters.s3.objects import ObjectVersion
from drkit.engines.objects.catalog import (
    StoredVersion,
    VersionRecord,
    decode_listing,
    encode_listing,
    fingerprint,
    state_at,
)
from drkit.engines.objects.copy import cut
from drkit.engines.objects.restore import _selection

T0 = datetime(2026, 2, 9, 14, 0, 0, tzinfo=UTC)


def version(
    key: str, vid: str, minutes: float, *, latest: bool = False, marker: bool = False
) -> VersionRecord:
    v = ObjectVersion(
        key, vid, T0 + timedelta(minutes=minutes), latest, marker, 0 if marker else 3, "" if marker else "e"
    )
    return VersionRecord(v, None if marker else StoredVersion(f"sha-{vid}", 3, (f"{vid}.00000.zst",)))


def chosen(records: list[VersionRecord], moment: datetime | None) -> dict[str, str]:
    return {k: r.version.version_id for k, r in state_at(records, moment).items()}


def test_the_newest_version_at_or_before_t_wins() -> None:
    records = [version("a", "a3", 30, latest=True), version("a", "a2", 20), version("a", "a1", 10)]
    assert chosen(records, T0 + timedelta(minutes=25)) == {"a": "a2"}
    assert chosen(records, T0 + timedelta(minutes=20)) == {"a": "a2"}  # "at or before"
    assert chosen(records, T0 + timedelta(minutes=5)) == {}  # did not exist yet
    assert chosen(records, None) == {"a": "a3"}


def test_a_newer_delete_marker_hides_the_key() -> None:
    records = [version("a", "a1", 10), version("a", "d1", 20, latest=True, marker=True)]
    assert chosen(records, T0 + timedelta(minutes=15)) == {"a": "a1"}
    assert chosen(records, T0 + timedelta(minutes=25)) == {}
    assert chosen(records, None) == {}


def test_within_one_second_latest_then_listing_order_decide() -> None:
    same = [version("a", "new", 10, latest=True), version("a", "old", 10)]
    assert chosen(same, T0 + timedelta(minutes=10)) == {"a": "new"}
    untagged = [version("b", "first-listed", 10), version("b", "second", 10)]
    assert chosen(untagged, T0 + timedelta(minutes=11)) == {"b": "first-listed"}
    tie = [version("c", "v", 10), version("c", "m", 10, marker=True)]
    assert chosen(tie, T0 + timedelta(minutes=10)) == {"c": "v"}  # restoring too much is recoverable


def test_the_null_version_is_identified_by_its_etag_and_time() -> None:
    one = ObjectVersion("k", "null", T0, True, etag="aa")
    other = ObjectVersion("k", "null", T0 + timedelta(seconds=1), True, etag="bb")
    assert fingerprint(one) != fingerprint(other)
    assert fingerprint(ObjectVersion("k", "v1", T0, True)) == fingerprint(ObjectVersion("k", "v1", T0, False))


def test_listing_lines_round_trip() -> None:
    packed = StoredVersion("s", 3, (), "text/plain", {"origin": "x"}, pack="packs/p.pack.zst", offset=7)
    records = [
        VersionRecord(ObjectVersion("a", "v1", T0, True, False, 3, "e"), packed),
        version("b", "d1", 1, latest=True, marker=True),
    ]
    assert decode_listing(encode_listing(records)) == records


def test_cut_regroups_chunks_and_keeps_an_empty_object() -> None:
    assert list(cut(iter([b"abc", b"de", b"fghij"]), 4)) == [b"abcd", b"efgh", b"ij"]
    assert list(cut(iter([b"abcd"]), 4)) == [b"abcd"]
    assert list(cut(iter([]), 4)) == [b""]


def test_prefix_selects_a_bucket_or_keys_in_every_bucket() -> None:
    assert _selection(["b1", "b2"], None) == [("b1", ""), ("b2", "")]
    assert _selection(["b1", "b2"], "b2/docs/") == [("b2", "docs/")]
    assert _selection(["b1", "b2"], "b1") == [("b1", "")]
    assert _selection(["b1", "b2"], "docs/") == [("b1", "docs/"), ("b2", "docs/")]
