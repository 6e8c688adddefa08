"""TLS for real: the CLI delivers to a TLS-only receiver given the right CA, and fails clearly without it.

Every test runs the real command (``dbt_otel_replay.cli:main``) against the
in-process ``OtlpReceiver`` speaking TLS with throwaway certificates made by
``tests/support/tls.py``: a CA, a server certificate for 127.0.0.1/localhost
and a client certificate for mutual TLS.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_otel_replay.cli import main
from tests.support.receiver import OtlpReceiver
from tests.support.tls import OPENSSL, TlsFiles, make_tls_files

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
PROTOCOLS = ("grpc", "http/protobuf")
TIMEOUT_SECONDS = 3.0
PROMPT_SECONDS = 1.0
"""A certificate error must end the run at once: the run takes ~0.05 s, a retried one 1.5 s or more."""
EXIT_EXPORT_FAILED = 3
_VERIFY_FAILED = re.compile(r"certificate[ _]verif(y|ication)[ _]failed", re.IGNORECASE)
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""Variables that make ``requests`` trust another bundle; removed unless a test sets them."""


@dataclass(frozen=True)
class Run:
    """What one CLI run did."""

    exit_code: int
    stderr: str
    seconds: float
    exception: BaseException | None

    @property
    def last_line(self) -> str:
        """The last line of stderr (the CLI's one-line error, on failure)."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_receiver(tls_files: TlsFiles) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tls=tls_files.server_tls()) as receiver:
        yield receiver


@pytest.fixture
def mtls_receiver(tls_files: TlsFiles) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tls=tls_files.server_tls(mutual=True)) as receiver:
        yield receiver


def expected_spans() -> int:
    """One invocation span, one per result, one per timing entry (compile, execute)."""
    results = json.loads((BUILD / "run_results.json").read_text())["results"]
    return 1 + len(results) + sum(len(result.get("timing") or []) for result in results)


def endpoint_for(receiver: OtlpReceiver, protocol: str) -> str:
    """The receiver's ``https://127.0.0.1:PORT`` for ``protocol`` (the CLI adds /v1/traces for HTTP)."""
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint


def replay(
    target: Path,
    protocol: str,
    endpoint: str,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Run:
    """Run the CLI with no OTEL_*, TRACEPARENT/TRACESTATE or CA bundle variables but ``env``'s."""
    inherited = {
        name: None
        for name in os.environ
        if name.startswith(("OTEL_", "TRACEPARENT", "TRACESTATE")) or name in _CA_BUNDLE_VARIABLES
    }
    args = [str(target), "--protocol", protocol, "--endpoint", endpoint, "--timeout", f"{timeout:g}"]
    args += ["--traceparent-to", str(target.parent / "traceparent.env")]
    started = time.monotonic()
    result = CliRunner().invoke(main, args, env={**inherited, **(env or {})})
    return Run(result.exit_code, result.stderr, time.monotonic() - started, result.exception)


def trusting(ca: Path) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca)}


def with_client_certificate(files: TlsFiles) -> dict[str, str]:
    return {
        **trusting(files.ca),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(files.client_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(files.client_key),
    }


def assert_delivered(run: Run, receiver: OtlpReceiver, target: Path) -> None:
    assert run.exit_code == 0, run.stderr
    spans = receiver.wait_for_spans(expected_spans(), timeout=5)
    assert len(spans) == expected_spans()
    carrier = (target.parent / "traceparent.env").read_text()
    assert carrier.startswith(f"TRACEPARENT=00-{spans[0].trace_id}-")


def assert_nothing_received(receiver: OtlpReceiver) -> None:
    assert receiver.attempts == []
    assert receiver.spans() == []


# --------------------------------------------------------------------------- #
# the certificate material itself
# --------------------------------------------------------------------------- #


def test_make_tls_files_writes_pem_files(tls_files: TlsFiles) -> None:
    assert tls_files.ca.name == "ca.pem"
    assert (tls_files.server_cert.name, tls_files.server_key.name) == ("server.pem", "server-key.pem")
    for path in (tls_files.ca, tls_files.server_cert, tls_files.client_cert, tls_files.other_ca):
        assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for path in (tls_files.server_key, tls_files.client_key):
        assert "PRIVATE KEY-----" in path.read_text()


# --------------------------------------------------------------------------- #
# (a) the right CA: delivered
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delivers_over_tls_with_the_ca(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    endpoint = endpoint_for(tls_receiver, protocol)
    assert endpoint.startswith("https://")
    run = replay(target, protocol, endpoint, trusting(tls_files.ca))
    assert_delivered(run, tls_receiver, target)
    assert {a.transport for a in tls_receiver.attempts} == {protocol.split("/")[0]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_signal_specific_certificate_variable_works_too(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(tls_files.ca)}
    run = replay(target, protocol, endpoint_for(tls_receiver, protocol), env)
    assert_delivered(run, tls_receiver, target)


# --------------------------------------------------------------------------- #
# (b) no CA, or the wrong one: a prompt, clear failure
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("ca", ["none", "unrelated"])
def test_fails_at_once_naming_certificate_verification(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str, ca: str
) -> None:
    endpoint = endpoint_for(tls_receiver, protocol)
    run = replay(target, protocol, endpoint, {} if ca == "none" else trusting(tls_files.other_ca))
    assert run.exit_code == EXIT_EXPORT_FAILED, run.stderr
    assert run.seconds < PROMPT_SECONDS, f"took {run.seconds:.1f} s: a certificate error was retried"
    assert run.last_line.startswith("dbt-otel-replay: error:")
    assert endpoint in run.last_line
    assert "tls" in run.last_line.lower()
    assert _VERIFY_FAILED.search(run.last_line), run.last_line
    assert_nothing_received(tls_receiver)


# --------------------------------------------------------------------------- #
# (c) plaintext against a TLS-only receiver
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plaintext_client_against_tls_fails(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    endpoint = endpoint_for(tls_receiver, protocol).replace("https://", "http://")
    # The receiver just drops the connection, which looks like an outage, so this is retried
    # until the deadline; a short one keeps the test fast.
    run = replay(target, protocol, endpoint, trusting(tls_files.ca), timeout=1)
    assert run.exit_code == EXIT_EXPORT_FAILED, run.stderr
    assert run.last_line.startswith("dbt-otel-replay: error:")
    assert endpoint in run.last_line
    assert_nothing_received(tls_receiver)


# --------------------------------------------------------------------------- #
# (d) mutual TLS
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delivers_over_mutual_tls_with_a_client_certificate(
    mtls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    run = replay(target, protocol, endpoint_for(mtls_receiver, protocol), with_client_certificate(tls_files))
    assert_delivered(run, mtls_receiver, target)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mutual_tls_without_a_client_certificate_fails(
    mtls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    endpoint = endpoint_for(mtls_receiver, protocol)
    run = replay(target, protocol, endpoint, trusting(tls_files.ca), timeout=1)
    assert run.exit_code == EXIT_EXPORT_FAILED, run.stderr
    assert run.last_line.startswith("dbt-otel-replay: error:")
    assert endpoint in run.last_line
    assert_nothing_received(mtls_receiver)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_certificate_variable_wins_over_requests_ca_bundle(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, target: Path, protocol: str
) -> None:
    """requests lets REQUESTS_CA_BUNDLE override Session.verify: the OTLP setting must still win."""
    env = {**trusting(tls_files.ca), "REQUESTS_CA_BUNDLE": str(tls_files.other_ca)}
    run = replay(target, protocol, endpoint_for(tls_receiver, protocol), env)
    assert_delivered(run, tls_receiver, target)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_missing_ca_file_is_a_one_line_usage_error(
    tls_receiver: OtlpReceiver, target: Path, tmp_path: Path, protocol: str
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    run = replay(target, protocol, endpoint_for(tls_receiver, protocol), trusting(missing))
    assert run.exception is None or isinstance(run.exception, SystemExit), repr(run.exception)
    assert run.exit_code == 2, run.stderr
    assert run.last_line == (
        "dbt-otel-replay: error: OTEL_EXPORTER_OTLP_CERTIFICATE: "
        f"cannot read {missing}: No such file or directory"
    )
    assert_nothing_received(tls_receiver)
