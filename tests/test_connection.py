"""Verified TLS, passwords and unreachable vCenters: one clear error each, against the real lab."""

import hashlib
import logging
import socket
import ssl
import subprocess
from pathlib import Path
from dataclasses import replace
from urllib.parse import urlparse

import pytest

from helpers import VMWAVE

from vmwave.adapters.vsphere import connect
from vmwave.errors import ConnectionFailed, InputError


def test_verified_tls_with_the_lab_ca(target):
    with connect(target) as si:
        assert si.content.about.apiType == "VirtualCenter"


def test_wrong_password_is_refused(target, tmp_path):
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    with pytest.raises(ConnectionFailed, match="refused the user name or password for administrator@vsphere.local"):
        with connect(replace(target, password_file=wrong)):
            pass


def test_wrong_user_is_refused(target):
    with pytest.raises(ConnectionFailed, match="refused"):
        with connect(replace(target, user="root")):
            pass


def test_unknown_ca_does_not_verify(target):
    with pytest.raises(ConnectionFailed, match="does not verify.*--ca"):
        with connect(replace(target, ca_file=None)):  # the system store does not know the lab CA
            pass


def _thumbprint(url: str) -> str:
    u = urlparse(url)
    der = ssl.get_server_certificate((u.hostname, u.port)).encode()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(der.decode())).hexdigest()


def test_pinned_thumbprint(target):
    pin = _thumbprint(target.url)
    with connect(replace(target, ca_file=None, thumbprint=":".join(pin[i : i + 2] for i in range(0, 64, 2)))) as si:
        assert si.content.about.apiType == "VirtualCenter"
    with pytest.raises(ConnectionFailed, match="pinned thumbprint"):
        with connect(replace(target, ca_file=None, thumbprint="00" * 32)):
            pass


def test_insecure_is_explicit_and_logged(target, caplog):
    with caplog.at_level(logging.WARNING):
        with connect(replace(target, ca_file=None, insecure=True)):
            pass
    assert "TLS verification of" in caplog.text and "OFF" in caplog.text


def test_unreachable_vcenter(target):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ConnectionFailed, match=f"cannot reach vCenter at 127.0.0.1:{port}"):
        with connect(replace(target, url=f"https://127.0.0.1:{port}/sdk")):
            pass


def test_missing_password_file(target, tmp_path):
    with pytest.raises(InputError, match="password file not found"):
        with connect(replace(target, password_file=tmp_path / "nope")):
            pass


@pytest.mark.parametrize(
    "env_change,expected",
    [
        ({"VMWAVE_VCENTER_PASSWORD_FILE": "/dev/null"}, "must hold exactly one line"),  # empty: refused before a login
        ({"VMWAVE_VCENTER_PASSWORD_FILE": str(Path(__file__).parent / "helpers.py")}, "must hold exactly one line"),
        ({"VMWAVE_VCENTER_CA": ""}, "does not verify"),
        ({"VMWAVE_VCENTER_URL": "https://127.0.0.1:1/sdk"}, "cannot reach vCenter"),
        ({"VMWAVE_VCENTER_URL": ""}, "url: is not set"),
    ],
)
def test_cli_failures_are_one_line_without_traceback(lab_env, tmp_path, env_change, expected):
    result = subprocess.run(
        [VMWAVE, "plan", "--out", str(tmp_path / "plan.yaml")],
        env={**lab_env, **env_change},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:")
    assert not (tmp_path / "plan.yaml").exists()
