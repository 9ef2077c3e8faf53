"""Case 4 at the ingest level: with canary values in POLYGON_S3_ACCESS_KEY, POLYGON_S3_SECRET_KEY and
SUPABASE_SERVICE_ROLE_KEY, every ingest (binance against the local Data Vision, polygon against moto,
yahoo through the replayed session) and failing requests (polygon refused with 403, binance answered
500), all at DEBUG log level (boto3/botocore log every request's headers, canonical request and
signature there): the canaries appear in no log line, output, error message, exception text, lake file
or raw cache file.

The polygon secret is really used: moto's authentication is on for the polygon runs, with an IAM user
whose keys are the canaries, so moto accepts a request only if botocore signed it with the canary
secret; the 403 is that user's missing permission, after a good signature.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest import binance, yahoo
from ingest.http import RetryPolicy
from tests.binance_server import DataVision, klines, serve
from tests.s3_server import BUCKET, S3Server, day_file, minute_key, ns, running_s3
from tests.secrets_canary import CANARIES, Capture, assert_no_leak, canaries, run_cli
from tests.yahoo_replay import ReplaySession, chart_payload, epoch, isolate_yfinance, queue

pytestmark = pytest.mark.integration

UTC = dt.UTC
DAY = dt.date(2024, 1, 30)
T0 = dt.datetime(2024, 1, 30, tzinfo=UTC)
ACCESS = CANARIES["POLYGON_S3_ACCESS_KEY"]
READER = "polygon-reader"
MOTO_ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def dv(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    for server in serve():
        monkeypatch.setenv("BINANCE_BASE_URL", server.base_url)
        monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.02))
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        t = dt.datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        rows = [("AAPL", 10 + i, 1.5, 1.6, 1.7, 1.4, ns(t + dt.timedelta(minutes=i)), 2) for i in range(30)]
        client.put_object(Bucket=BUCKET, Key=minute_key(dt.date(2024, 1, 2)), Body=day_file(rows))
        _user_with_the_canary_keys(server)
        yield server


def _user_with_the_canary_keys(s3: S3Server) -> None:
    """An IAM user of moto whose access key and secret are the canaries: with moto's authentication on,
    a request is accepted only if botocore signed it with the canary secret (moto recomputes the
    signature from the secret it holds)."""
    import boto3
    from moto.iam.models import iam_backends

    iam = boto3.client("iam", endpoint_url=s3.endpoint, aws_access_key_id="x", aws_secret_access_key="y",
                       region_name="us-east-1")  # fmt: skip
    iam.create_user(UserName=READER)
    made = iam.create_access_key(UserName=READER)["AccessKey"]["AccessKeyId"]
    (user,) = [u for u in iam_backends[MOTO_ACCOUNT]["aws"].list_users("/", None, None) if u.name == READER]
    (key,) = [k for k in user.access_keys if k.access_key_id == made]
    key.access_key_id = ACCESS
    key.secret_access_key = CANARIES["POLYGON_S3_SECRET_KEY"]


def _allow_reading(s3: S3Server, allow: bool) -> None:
    import boto3
    from moto.iam.models import iam_backends

    user = iam_backends[MOTO_ACCOUNT]["aws"].get_user(READER)
    user.policies.clear()
    if allow:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam = boto3.client("iam", endpoint_url=s3.endpoint, aws_access_key_id="x", aws_secret_access_key="y",
                           region_name="us-east-1")  # fmt: skip
        iam.put_user_policy(UserName=READER, PolicyName="read", PolicyDocument=json.dumps(policy))


@contextlib.contextmanager
def _authenticating(s3: S3Server, *, allow: bool) -> Iterator[None]:
    """moto checks every request's signature and the user's policy while inside."""
    _allow_reading(s3, allow)
    _moto_auth(s3, "0")
    try:
        yield
    finally:
        _moto_auth(s3, "inf")


@pytest.fixture
def polygon_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", s3.endpoint)
    return s3


def _moto_auth(s3: S3Server, count: str) -> None:
    """Switch moto's request authentication on ("0": from the next request) or off ("inf")."""
    req = urllib.request.Request(
        f"{s3.endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
    )
    urllib.request.urlopen(req, timeout=10).close()


def _a_wrong_secret_is_refused(s3: S3Server) -> None:
    import boto3
    from botocore.exceptions import ClientError

    wrong = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=ACCESS,
                         aws_secret_access_key="not-the-canary", region_name="us-east-1")  # fmt: skip
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        wrong.list_objects_v2(Bucket=BUCKET)


def _assert_botocore_logged_the_signed_headers(cap: Capture) -> None:
    """Not vacuous: botocore did log the request headers at DEBUG, with the access key masked."""
    signed = [r for r in cap.records if "Credential=" in r]
    assert signed, "botocore logged no Authorization header: the DEBUG level did not reach it"
    assert all("Credential=***/" in r for r in signed), signed[:1]


POLYGON = ["ingest", "polygon", "--tickers", "AAPL", "--interval", "1m", "--start", "2024-01-02",
           "--end", "2024-01-02"]  # fmt: skip


def test_binance_ingest_at_debug_leaks_no_secret(
    dv: DataVision, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path
) -> None:
    dv.publish("BTCUSDT", "1m", DAY, "daily", klines(T0, 60))
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT",
                               "--start", "2024-01-30", "--end", "2024-01-30"])  # fmt: skip
    assert cap.exit_code == 0, cap.stdout + cap.stderr
    assert any(p.suffix == ".zip" for p in (lake_root / "raw").rglob("*"))
    assert_no_leak(cap, lake_root)


def test_binance_failing_request_at_debug_leaks_no_secret(
    dv: DataVision, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path
) -> None:
    path = dv.publish("BTCUSDT", "1m", DAY, "daily", klines(T0, 60))
    dv.fault(path, "500", "500", "500")
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(lake_root), "ingest", "binance", "--symbols", "BTCUSDT",
                               "--start", "2024-01-30", "--end", "2024-01-30"])  # fmt: skip
    assert cap.exit_code == 1, cap.stdout + cap.stderr
    assert "HTTP 500" in cap.stderr and "retry" in "\n".join(cap.records), cap.stderr
    assert_no_leak(cap, lake_root)


def test_polygon_ingest_signed_with_the_canary_at_debug_leaks_no_secret(
    polygon_env: S3Server, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path
) -> None:
    with canaries(monkeypatch), _authenticating(polygon_env, allow=True):
        cap = run_cli(runner, ["--lake", str(lake_root), *POLYGON])
        _a_wrong_secret_is_refused(polygon_env)  # so the run above was signed with the canary itself
    assert cap.exit_code == 0, cap.stdout + cap.stderr
    assert (lake_root / "raw/polygon" / minute_key(dt.date(2024, 1, 2))).exists()
    _assert_botocore_logged_the_signed_headers(cap)
    assert_no_leak(cap, lake_root)


def test_polygon_refused_403_at_debug_leaks_no_secret(
    polygon_env: S3Server, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path
) -> None:
    # the signature is right (made with the canary secret), but the user may not read: 403 AccessDenied
    with canaries(monkeypatch), _authenticating(polygon_env, allow=False):
        cap = run_cli(runner, ["--lake", str(lake_root), *POLYGON])
    assert cap.exit_code == 1, cap.stdout + cap.stderr
    assert "access denied" in cap.stderr and "(403)" in cap.stderr, cap.stderr
    assert "403" in "\n".join(cap.records)
    _assert_botocore_logged_the_signed_headers(cap)
    assert_no_leak(cap, lake_root)


def test_yahoo_ingest_at_debug_leaks_no_secret(
    monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path, tmp_path: Path
) -> None:
    isolate_yfinance(tmp_path / "yfcache")
    day = dt.date(2024, 11, 27)
    at = dt.datetime(2024, 11, 27, 14, 30, tzinfo=UTC)
    session = ReplaySession()
    session.charts[("AAPL", "1d")] = queue(
        (200, chart_payload("AAPL", "1d", [epoch(at)], open=[234.47], high=[235.69], low=[233.81],
                            close=[235.06], volume=[33498400]))
    )  # fmt: skip
    monkeypatch.setattr(yahoo, "default_session", lambda: session)
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(lake_root), "ingest", "yahoo", "--symbols", "AAPL",
                               "--interval", "1d", "--start", day.isoformat(), "--end", day.isoformat()])  # fmt: skip
    assert cap.exit_code == 0, cap.stdout + cap.stderr
    assert session.chart_calls(), "the replayed session answered the chart request"
    assert_no_leak(cap, lake_root)


def test_the_helper_would_see_the_access_key_in_a_botocore_header(
    polygon_env: S3Server, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, lake_root: Path
) -> None:
    """The check above is able to fail: without redaction, botocore's DEBUG lines hold the access key."""
    import lake.logs

    monkeypatch.setattr(lake.logs, "secret_values", lambda: [])
    with canaries(monkeypatch):
        cap = run_cli(runner, ["--lake", str(lake_root), *POLYGON])
    assert cap.exit_code == 0, cap.stdout + cap.stderr
    assert any(f"Credential={ACCESS}/" in r for r in cap.records)
    assert not any(CANARIES["POLYGON_S3_SECRET_KEY"] in r for r in cap.records), (
        "the secret itself is never logged"
    )


# --- a password inside BINANCE_BASE_URL (a mirror behind basic auth) ------------------------------------

MIRROR_USER = "mirroruser"
MIRROR_PASSWORD = "S3cretPw-canary7Q"


@pytest.fixture
def dv_with_auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[DataVision]:
    """The local Data Vision behind basic auth (401 without the right credentials), reached through a URL
    that carries them: http://mirroruser:<password>@127.0.0.1:PORT."""
    import base64

    from aiohttp import web

    good = "Basic " + base64.b64encode(f"{MIRROR_USER}:{MIRROR_PASSWORD}".encode()).decode()
    serve_files = DataVision.handle

    async def handle(self: DataVision, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != good:
            with self.lock:
                self.log.append((request.path, 0.0, 401))
            return web.Response(
                status=401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="dv"'}
            )
        return await serve_files(self, request)

    monkeypatch.setattr(DataVision, "handle", handle)
    for server in serve():
        netloc = server.base_url.removeprefix("http://")
        monkeypatch.setenv("BINANCE_BASE_URL", f"http://{MIRROR_USER}:{MIRROR_PASSWORD}@{netloc}")
        monkeypatch.setattr(binance, "RETRY", RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.02))
        yield server


def _password_leaks(cap: Capture, root: Path) -> list[str]:
    """Where the mirror's password (as written, URL-encoded, or inside a base64 Authorization value)
    appears: the run's output, log records, exception text, and the bytes of every file under the lake."""
    import base64

    needles = {
        MIRROR_PASSWORD,
        base64.b64encode(f"{MIRROR_USER}:{MIRROR_PASSWORD}".encode()).decode(),
    }
    found = [f"{where}: {n!r}" for where, text in cap.texts().items() for n in needles if n in text]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(root)}: {n!r}" for n in needles if n.encode() in data]
    return found


def test_a_password_in_binance_base_url_is_used_and_kept_out_of_the_lake_and_the_output(
    dv_with_auth: DataVision, runner: CliRunner, lake_root: Path
) -> None:
    path = dv_with_auth.publish("BTCUSDT", "1m", DAY, "daily", klines(T0, 60))
    dv_with_auth.fault(path + ".CHECKSUM", "500")  # a retry: its log line names the URL
    args = ["--lake", str(lake_root), "ingest", "binance", "--start", "2024-01-30", "--end", "2024-01-30"]
    ok = run_cli(runner, [*args, "--symbols", "BTCUSDT"])
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    statuses = [s for p, _, s in dv_with_auth.requests() if p.startswith("/data/")]  # not the start's ping
    assert 401 not in statuses and statuses.count(200) >= 2, statuses  # the credentials were sent
    assert (lake_root / "raw/binance" / path.lstrip("/")).is_file()
    assert any("127.0.0.1" in r and "retry" in r.lower() for r in ok.records), ok.records  # not vacuous
    # the error path: a symbol Data Vision does not have names the mirror, without its password
    missing = run_cli(runner, [*args, "--symbols", "ZZZUSDT"])
    assert missing.exit_code == 1, missing.stdout + missing.stderr
    assert "no file at all for ZZZUSDT on http://127.0.0.1:" in missing.stderr, missing.stderr
    found = _password_leaks(ok, lake_root) + _password_leaks(missing, lake_root)
    assert found == [], "the mirror's password leaked:\n" + "\n".join(found)
    assert_no_leak(ok, lake_root)
