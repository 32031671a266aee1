"""Where restores write comes from the configuration, never from a backup: Redis's layout
with the server down (engines/redis/layout.py) and the buckets an objects restore writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import IntegrityError, UsageError
from drkit.domain.stack import RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.objects.restore import check_targets
from drkit.engines.redis.layout import configured_layout, parse_config, require_plain, split_argv


def redis(tmp_path: Path, command: list[str]) -> Service:
    return Service("cache", "redis", RuntimeSpec("local", command=tuple(command), data_dir=str(tmp_path)))


def test_the_layout_comes_from_the_config_file_then_the_command_line(tmp_path: Path) -> None:
    extra = tmp_path / "extra.conf"
    extra.write_text('appendfilename "custom.aof"\n')
    conf = tmp_path / "redis.conf"
    conf.write_text(
        f'dir "/srv/redis"\ndbfilename snap.rdb\nappendonly no\ninclude {extra}\n# appendonly yes\n'
    )
    service = redis(tmp_path, ["/usr/bin/redis-server", str(conf), "--appendonly", "yes", "--port", "7000"])
    layout, source = configured_layout(service)
    assert (
        layout.dir,
        layout.dbfilename,
        layout.appendonly,
        layout.appendfilename,
        layout.appenddirname,
    ) == (
        "/srv/redis",
        "snap.rdb",
        True,  # the command line wins over the file, as in Redis
        "custom.aof",
        "appendonlydir",
    )
    assert "runtime.command" in source and str(conf) in source


def test_redis_defaults_and_a_wrapper_that_hides_the_server() -> None:
    assert split_argv(["redis-server"]) == (None, {})
    assert split_argv(["redis-server", "--dbfilename=x.rdb", "--save", "60", "1"]) == (
        None,
        {"dbfilename": "x.rdb"},
    )
    assert parse_config("dir ./\n", Path("/")) == {"dir": "./"}
    with pytest.raises(UsageError, match="does not run redis-server directly"):
        configured_layout(redis(Path("/tmp"), ["/usr/local/bin/start-cache.sh"]))


@pytest.mark.parametrize("name", ["/etc/cron.d/x", "../../x", "a/b", "..", ""])
def test_a_layout_name_must_be_plain(tmp_path: Path, name: str) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text(f'dbfilename "{name}"\n')
    layout, source = configured_layout(redis(tmp_path, ["redis-server", str(conf)]))
    with pytest.raises(IntegrityError, match="is not a plain file name"):
        require_plain(layout, source)


def stack(*, bucket: str = "drkit-backups") -> Stack:
    repo = RepositorySpec("offsite", "s3", endpoint="http://s3:9000", bucket=bucket)
    service = Service("objects", "s3", RuntimeSpec("local"), url="http://s3:9000")
    return Stack("st", {"objects": service}, {"offsite": repo}, "offsite")


def test_an_objects_restore_never_targets_a_repository_bucket_or_a_bad_name() -> None:
    st = stack()
    service = st.services["objects"]
    t = datetime(2026, 1, 1, tzinfo=UTC)
    m = Manifest("20260101T000000Z-objects", "st", "objects", BackupKind.OBJECTS, t, t, (), {})
    check_targets(st, service, m, ["uploads"], None)
    with pytest.raises(UsageError, match="holds drkit's repository 'offsite'"):
        check_targets(st, service, m, ["drkit-backups"], None)
    with pytest.raises(UsageError, match="holds drkit's repository"):
        check_targets(st, service, m, ["uploads"], "drkit-backups")
    with pytest.raises(IntegrityError, match="not a bucket name"):
        check_targets(st, service, m, ["../../etc"], None)
    configured = Service("objects", "s3", RuntimeSpec("local"), url="http://s3:9000", buckets=("uploads",))
    with pytest.raises(IntegrityError, match="does not back up"):
        check_targets(st, configured, m, ["avatars"], None)
    check_targets(st, configured, m, ["avatars"], "restored-avatars")  # the operator's --to
