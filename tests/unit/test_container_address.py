"""How drkit dials a compose PostgreSQL that publishes no port: the DSN names the container
(`host=<project>_postgres`, as the nself preset writes), and drkit adds libpq's `hostaddr`
with the address `docker inspect` gives. The inspect answers below are what
`docker inspect -f '{{json .HostConfig.NetworkMode}} {{json .NetworkSettings.Networks}}'`
printed here (Debian's dockerd 20.10, docker client 28; abridged) for a running and a stopped
container on a compose bridge network and one on host networking."""

from __future__ import annotations

import pytest
from psycopg import conninfo

from drkit.adapters import container
from drkit.adapters.postgres import client
from drkit.domain.stack import RuntimeSpec, Service

BRIDGE = (
    '"shop_network" {"shop_network":{"IPAMConfig":null,"Links":null,"Aliases":["421f2c11ca41"],'
    '"Gateway":"10.213.7.1","IPAddress":"10.213.7.2","IPPrefixLen":24}}'
)
HOST = '"host" {"host":{"IPAMConfig":null,"Gateway":"","IPAddress":"","IPPrefixLen":0}}'
STOPPED = '"shop_network" {"shop_network":{"Gateway":"","IPAddress":"","IPPrefixLen":0}}'


def test_the_address_on_a_bridge_network_on_host_networking_and_when_stopped() -> None:
    assert container._address(BRIDGE) == "10.213.7.2"
    assert container._address(HOST) == "127.0.0.1"
    assert container._address(STOPPED) is None
    assert container._address("garbage") is None


def pg(dsn: str, runtime: RuntimeSpec) -> Service:
    return Service(name="postgres", kind="postgres", runtime=runtime, dsn=dsn, password="pw")


COMPOSE = RuntimeSpec(type="compose", container="shop_postgres")


def test_a_dsn_naming_the_container_dials_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "container_address", lambda spec: "10.213.7.2")
    params = conninfo.conninfo_to_dict(
        client.service_dsn(pg("host=shop_postgres port=5432 dbname=shop", COMPOSE))
    )
    assert params["host"] == "shop_postgres" and params["hostaddr"] == "10.213.7.2"
    assert params["password"] == "pw"


def test_other_dsns_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(spec: RuntimeSpec) -> str:
        raise AssertionError("docker asked for a DSN that does not name the container")

    monkeypatch.setattr(client, "container_address", never)
    for service in (
        pg("host=127.0.0.1 port=5432", COMPOSE),
        pg("host=shop_postgres hostaddr=10.0.0.9", COMPOSE),
        pg("host=shop_postgres", RuntimeSpec(type="local")),
    ):
        assert "hostaddr=10.213" not in client.service_dsn(service)
    # a restored copy on its own port: the override says where, not the container
    copy = client.service_dsn(pg("host=shop_postgres", COMPOSE), host="127.0.0.1", port=55432)
    assert conninfo.conninfo_to_dict(copy)["host"] == "127.0.0.1" and "hostaddr" not in copy


def test_no_address_from_docker_leaves_the_name_for_libpq_to_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "container_address", lambda spec: None)
    params = conninfo.conninfo_to_dict(client.service_dsn(pg("host=shop_postgres", COMPOSE)))
    assert "hostaddr" not in params and params["host"] == "shop_postgres"
