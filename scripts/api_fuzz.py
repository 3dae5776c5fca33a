"""The body of scripts/api-fuzz (run by it, in its venv): starts the hub binary on a temporary
data directory with two communities, seeds alerts and gate events in both, logs in a property
user of the first community, and runs schemathesis against /api/openapi.json once as that user
and then as an admin: the hub's API token, the admin service account. (A logged-in admin would
not do: schemathesis reuses names from answers, so it soon PATCHes the run's own admin account,
disabled or with a new password, and every later request is 401.) The property run goes first
for the same reason. Exits non-zero on any failure; prints the totals of both runs.

Env: XUELIANG_BIN (the hub binary), API_FUZZ_EXAMPLES (examples per operation and phase,
default 50: about 2,100 requests a run, under a minute for both on 2 cores), API_FUZZ_SEED (default 1; hypothesis is deterministic given it).
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = os.environ.get("XUELIANG_BIN", str(REPO / "target" / "debug" / "xueliang"))
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "50"))
SEED = os.environ.get("API_FUZZ_SEED", "1")

# Community A is the property user's; community B must never show in their answers. Every id
# of B contains "heping", and its names "和平".
A, B = "xingfu", "heping"
FORBIDDEN = [B, "和平"]
SECRET = "api-fuzz-push-secret-" + secrets.token_hex(8)
PROPERTY = "fuzz-property-" + secrets.token_hex(4)
PASSWORD = secrets.token_urlsafe(18)
API_TOKEN = secrets.token_urlsafe(24)

# Not fuzzed: logout ends the session the run uses; the alert stream never ends (its
# answer is an endless event stream, covered by the Rust tests); the camera probe dials
# whatever URL it is given, and a camera that cannot be reached is a 502 by design, which
# not_a_server_error counts as a failure (crates/xueliang/tests/topology_api.rs probes the
# real RTSP server).
EXCLUDED = ["/api/v1/auth/logout", "/api/v1/alerts/stream", "/api/v1/cameras/probe"]
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "out_of_scope",
]


def log(msg):
    print(f"api-fuzz: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, data):
    cams = [
        ("xingfu-east-gate", "幸福小区 东门", A, "community"),
        ("xingfu-hexie-road", "和谐路口 (天网)", A, "skynet"),
        ("heping-east-gate", "和平小区 东门", B, "community"),
        ("heping-car-park", "和平小区 停车场", B, "community"),
    ]
    text = (
        f'[server]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{data}"\napi_token = "{API_TOKEN}"\n'
        "[detect]\nenabled = false\n"
    )
    for cid, name, community, network in cams:
        # Nothing listens on port 9: the cameras stay offline and cost nothing.
        text += (
            f'[[cameras]]\nid = "{cid}"\nname = "{name}"\ncommunity = "{community}"\n'
            f'network = "{network}"\nurl = "rtsp://127.0.0.1:9/{cid}"\n'
        )
    for gid, community, camera in [("xingfu-door", A, "xingfu-east-gate"), ("heping-door", B, "heping-east-gate")]:
        text += (
            f'[[gates]]\nid = "{gid}"\ncommunity = "{community}"\nfirmware = "hikvision-isapi"\n'
            f'camera = "{camera}"\npush_secret = "{SECRET}"\n'
        )
    return text


def add_user(cfg, name, role, communities=None):
    args = [BIN, "user", "add", "--config", str(cfg), "--role", role]
    if communities:
        args += ["--communities", communities]
    args.append(name)
    r = subprocess.run(args, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"api-fuzz: `xueliang user add {name}` failed: {r.stderr}")


def payload(serial, forced):
    """The DS-K1T fixture: a face pass, or turned into "door abnormally open"."""
    fixture = REPO / "firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
    v = json.loads(fixture.read_text())
    ev = v["AccessControllerEvent"]
    ev["serialNo"] = serial
    if forced:
        ev["subEventType"] = 0x1B
        for k in ["name", "employeeNoString", "currentVerifyMode", "FaceRect"]:
            ev.pop(k, None)
    v["dateTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(v)


def wait_ready(base, hub, log_path):
    for _ in range(600):
        if hub.poll() is not None:
            raise SystemExit(f"api-fuzz: the hub exited ({hub.returncode}):\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("api-fuzz: the hub did not become ready in 120 s")


def login(base, name):
    r = requests.post(f"{base}/api/v1/auth/login", json={"username": name, "password": PASSWORD}, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"api-fuzz: login of {name} answered {r.status_code}: {r.text}")
    return r.json()["token"]


def seed(base, admin_token):
    serial = 1000
    for gate in ["xingfu-door", "heping-door"]:
        for forced in [False, True]:
            serial += 1
            r = requests.post(
                f"{base}/gates/push/hikvision/{gate}?secret={SECRET}",
                data=payload(serial, forced),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            if r.status_code != 200:
                raise SystemExit(f"api-fuzz: seeding {gate} answered {r.status_code}: {r.text}")
    auth = {"Authorization": f"Bearer {admin_token}"}
    for _ in range(100):
        alerts = requests.get(f"{base}/api/v1/alerts", headers=auth, timeout=30).json()
        if {a["community"] for a in alerts} >= {A, B}:
            return alerts
        time.sleep(0.2)
    raise SystemExit(f"api-fuzz: no alert in both communities after seeding: {alerts}")


def fuzz(st, doc, base, who, token, report, forbidden):
    env = dict(os.environ)
    env["SCHEMATHESIS_HOOKS"] = "api_fuzz_hooks"
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["XL_FUZZ_FORBIDDEN"] = ",".join(forbidden)
    args = [
        st, "run", str(doc), "--url", base,
        "-H", f"Authorization: Bearer {token}",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES),
        "--seed", SEED,
        "--phases", "examples,coverage,fuzzing",
        "--workers", "2",
        "--request-timeout", "30",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(report),
        "--no-color",
    ]
    for p in EXCLUDED:
        args += ["--exclude-path", p]
    log(f"schemathesis as {who}: {EXAMPLES} examples per operation and phase")
    started = time.monotonic()
    # In the temporary directory: schemathesis and hypothesis keep caches in the working one.
    run = subprocess.run(args, env=env, stdout=subprocess.PIPE, text=True, cwd=report.parent)
    sys.stdout.write(run.stdout)
    sys.stdout.flush()
    cases = re.search(r"(\d+) generated", run.stdout)
    return run.returncode, time.monotonic() - started, int(cases.group(1)) if cases else 0


def totals(report):
    """(test cases, failures, errors) from the JUnit report."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    n = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) for s in suites)
    e = sum(int(s.get("errors", 0)) for s in suites)
    return n, f, e


def main():
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(BIN).is_file():
        raise SystemExit(f"api-fuzz: {BIN} not found: build it (cargo test builds it) or set XUELIANG_BIN")
    tmp = Path(tempfile.mkdtemp(prefix="xl-api-fuzz-"))
    hub = None
    ok = False
    try:
        data = tmp / "data"
        data.mkdir()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = tmp / "hub.toml"
        cfg.write_text(config(port, data))
        add_user(cfg, PROPERTY, "property", A)
        log_path = tmp / "hub.log"
        with open(log_path, "w") as hub_log:
            hub = subprocess.Popen([BIN, "run", "--config", str(cfg)], stdout=hub_log, stderr=hub_log)
        wait_ready(base, hub, log_path)
        # Before fuzzing: the fuzzer's failed logins soon rate-limit this address.
        prop = login(base, PROPERTY)
        admin = API_TOKEN
        alerts = seed(base, admin)
        log(f"hub at {base}; seeded {len(alerts)} alerts in {A} and {B}")
        doc = tmp / "openapi.json"
        r = requests.get(f"{base}/api/openapi.json", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        r.raise_for_status()
        doc.write_text(r.text)
        results = []
        for who, token, forbidden in [("property", prop, FORBIDDEN), ("admin", admin, [])]:
            report = tmp / f"junit-{who}.xml"
            rc, secs, cases = fuzz(st, doc, base, who, token, report, forbidden)
            n, f, e = totals(report) if report.exists() else (0, 0, 0)
            results.append((who, rc, n, f, e, secs, cases))
        if hub.poll() is not None:
            log(f"the hub exited during the run ({hub.returncode})")
            results.append(("hub", 1, 0, 1, 0, 0, 0))
        print("api-fuzz totals:")
        for who, rc, n, f, e, secs, cases in results:
            print(
                f"  {who}: {n} operations, {cases} test cases, {f} operations failed, {e} errors, "
                f"exit {rc}, {secs:.0f} s"
            )
        failed = [r[0] for r in results if r[1] != 0 or r[3] or r[4]]
        print("api-fuzz: " + (f"FAILED: {', '.join(failed)}" if failed else "every run clean"))
        ok = not failed
        if not ok:
            print(f"api-fuzz: hub log tail:\n{log_path.read_text()[-3000:]}", file=sys.stderr)
    finally:
        if hub is not None and hub.poll() is None:
            hub.terminate()
            try:
                hub.wait(timeout=20)
            except subprocess.TimeoutExpired:
                hub.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
