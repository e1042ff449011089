"""TLS to the platform: CA and client certificate, verification on."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber

GW = "gw-tls-0001"
P = f"hearthgate/{GW}"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


def make_cert(d: Path, ca: str, name: str, san: str | None) -> tuple[Path, Path]:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", str(ext), cwd=d)
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_crt, _ = make_ca(d, "platform-ca")
    other_ca, _ = make_ca(d, "other-ca")
    srv_crt, srv_key = make_cert(d, "platform-ca", "server", "IP:127.0.0.1")
    cli_crt, cli_key = make_cert(d, "platform-ca", "gateway", None)
    return {"ca": ca_crt, "other_ca": other_ca, "server_crt": srv_crt, "server_key": srv_key,
            "client_crt": cli_crt, "client_key": cli_key}


@pytest.fixture
def tls_broker(tmp_path, pki) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "tls-broker",
                        tls=(pki["ca"], pki["server_crt"], pki["server_key"])).start()
    try:
        yield b
    finally:
        b.close()


def config(tmp_path: Path, broker: MosquittoBroker, ca: Path, pki: dict[str, Path]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""gateway: {{id: {GW}, data_dir: {tmp_path / "data"}, language: en}}
uplink:
  host: 127.0.0.1
  port: {broker.tls_port}
  keepalive: 5s
  tls: {{ca_file: {ca}, cert_file: {pki["client_crt"]}, key_file: {pki["client_key"]}}}
sites:
  - {{id: room-1, rules: [{{type: device_offline}}]}}
""")
    return path


async def test_gateway_connects_over_tls_with_client_certificate(tmp_path, tls_broker, pki):
    gw = GatewayProcess(config(tmp_path, tls_broker, pki["ca"], pki))
    async with PlatformSubscriber(tls_broker.host, tls_broker.port, (f"{P}/#",)) as platform:
        try:
            gw.start()
            await platform.wait_json(f"{P}/status", lambda b: b["state"] == "online", timeout=20)
            await platform.publish(f"{P}/cmd/ping", {"id": "over-tls"})
            [pong] = await platform.wait_json(f"{P}/cmd/result", lambda b: b["id"] == "over-tls")
            assert pong["ok"] is True
        finally:
            gw.close()


async def test_gateway_refuses_a_broker_its_ca_did_not_sign(tmp_path, tls_broker, pki):
    gw = GatewayProcess(config(tmp_path, tls_broker, pki["other_ca"], pki))
    async with PlatformSubscriber(tls_broker.host, tls_broker.port, (f"{P}/#",)) as platform:
        try:
            gw.start()
            await asyncio.sleep(4)
            assert platform.on(f"{P}/status") == []
            assert gw.proc is not None and gw.proc.poll() is None  # it keeps trying, alive
            assert "certificate verify failed" in gw.log_text()
        finally:
            gw.close()
