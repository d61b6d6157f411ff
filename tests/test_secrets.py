"""`vmwave secrets set` keeps credentials in Prefect Secret blocks, from files only; a run's kubeconfig is private."""

import os
import stat
import subprocess

import pytest

from helpers import VMWAVE
from vmwave.adapters.prefect_api.secrets import kubeconfig_file

pytestmark = pytest.mark.prefect


def test_a_password_and_a_kubeconfig_become_blocks_and_bad_input_is_refused(prefect_server, tmp_path):
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    password, kubeconfig = tmp_path / "password", tmp_path / "kubeconfig"
    password.write_text("s3cr3t-Pa55\n")
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")

    def secrets(*argv):
        return subprocess.run([VMWAVE, "secrets", "set", *argv], capture_output=True, text=True, env=env)

    assert secrets("vcenter", "--password-file", str(password), "--name", "t-vc").returncode == 0
    assert Secret.load("t-vc").get() == "s3cr3t-Pa55"  # as the password file is read: without its line end
    assert secrets("kubeconfig", "--file", str(kubeconfig)).returncode == 0  # the default name
    assert Secret.load("vmwave-kubeconfig").get() == kubeconfig.read_text()

    with kubeconfig_file("vmwave-kubeconfig") as path:
        assert path.read_text() == kubeconfig.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.exists() and not path.parent.exists()  # gone with the run

    password.write_text("two\nlines\n")
    refused = secrets("vcenter", "--password-file", str(password))
    assert refused.returncode == 2 and "exactly one line" in refused.stderr
    assert "is not a credential" in secrets("ldap", "--file", str(kubeconfig)).stderr
    assert "--password-file FILE" in secrets("vcenter").stderr
    with pytest.raises(Exception, match="vmwave secrets set kubeconfig"):
        with kubeconfig_file("no-such-block"):
            pass
