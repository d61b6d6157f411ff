"""`vmwave notify set` on a real Prefect server: a failing wave and a P5 VM waiting for approval each deliver one
Slack-compatible webhook, naming the wave, the VMs and the report, to a receiver on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from helpers import VMWAVE
from vmwave_lab.servers import prefect_server_on

pytestmark = [pytest.mark.lab, pytest.mark.prefect]


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append({"type": self.headers.get("Content-Type"), "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def until(condition, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; webhooks: {Receiver.received}"
        time.sleep(0.5)  # a condition polled with a deadline
    return found


def texts(part: str) -> list[str]:
    return [r["body"]["text"] for r in Receiver.received if part in r["body"]["text"]]


def test_a_failing_wave_and_a_p5_vm_waiting_each_send_one_webhook(wave_env, planned, tmp_path, agent_never_answers):
    plan, doc, wave = planned
    failing, manual = wave["vms"][0], wave["vms"][1]
    manual["mode"] = "manual"
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    agent_never_answers(
        wave_env["VMWAVE_KUBECONFIG"], "vmwave", failing["target_name"], wave_env["VMWAVE_LEDGER"], failing["uuid"]
    )
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url_file = tmp_path / "webhook-url"
    url_file.write_text(f"http://127.0.0.1:{receiver.server_port}/hooks/T000/B000/secret-token\n")
    with prefect_server_on(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}", tmp_path / "prefect") as server:
        env = {
            **os.environ,
            **wave_env,
            "PREFECT_API_URL": server.api,
            "VMWAVE_TIMEOUTS": "agent=3",
            "PREFECT_HOME": str(tmp_path / "prefect-client"),
        }
        made = subprocess.run(
            [VMWAVE, "notify", "set", "--webhook-block", "vmwave-test", "--url-file", str(url_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        assert "secret-token" not in made.stderr + made.stdout  # the URL's token stays in the block
        worker = subprocess.Popen(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            [waiting] = until(lambda: texts("waits for approval"), "the approval webhook")
            assert f"{wave['id']}-{manual['name']}" in waiting
            reject = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        "import sys; from prefect.client.orchestration import get_client; "
                        "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName; "
                        "from prefect.flow_runs import resume_flow_run\n"
                        "with get_client(sync_client=True) as c:\n"
                        "    [run] = "
                        "c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[sys.argv[1]])))\n"
                        "    resume_flow_run(run.id, run_input={'approve': False, 'note': 'not tonight'})"
                    ),
                    f"{wave['id']}-{manual['name']}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert reject.returncode == 0, reject.stderr
            output = worker.communicate(timeout=600)[0]
            assert worker.returncode == 1, output
            [failed] = until(lambda: texts("ended Failed"), "the wave-failed webhook")
        finally:
            if worker.poll() is None:
                worker.kill()
            subprocess.run(
                [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
                env=env,
                capture_output=True,
                timeout=600,
            )
    receiver.shutdown()
    assert f"wave-{wave['id']}" in failed and failing["name"] in failed and manual["name"] in failed
    assert str(tmp_path / f"wave-{wave['id']}-report.md") in failed
    assert len(texts("waits for approval")) == 1 and len(texts("ended Failed")) == 1
    assert all(r["type"] == "application/json" for r in Receiver.received)
