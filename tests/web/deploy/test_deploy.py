"""Deployment files rendered by `tapgrid config`, checked by the real
programs: nginx in front of a real `tapgrid serve` (sign-in, the WebSocket
upgrade and taps through it, nginx's own shedding, the server's 503 with
Retry-After passed through intact), promtool on the scrape config and the
alert rules, systemd-analyze on the unit, and the Grafana dashboard against
the metric families of a live /metrics."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors import Config
from tests.support import ROOT, free_port, wait_until
from web.client import TapgridClient
from web.deploy import render

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def tapgrid_config(kind, *args):
    out = subprocess.run([sys.executable, "-m", "web.cli", "config", kind, *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server, max_connections 1, with a file replica (so the replica's
    metric families are live too)."""
    from tests.support import ServerProcess
    d = tmp_path_factory.mktemp("deploy")
    s = ServerProcess(str(d / "tapgrid.db"), "--seed", "1", "--replica", f"file://{d}/replica",
                      env={"TAPGRID_MAX_CONNECTIONS": "1", "TAPGRID_LITESTREAM_ADDR": ""}).start()
    yield s
    s.kill()


@pytest.fixture
def nginx(server, tmp_path):
    """nginx (not a daemon) with the rendered file, on a free loopback port."""
    assert NGINX, "nginx is not installed (.ci/run installs it with apt)"
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    env = dict(os.environ, TAPGRID_MAX_CONNECTIONS="1", TAPGRID_PROXY_CONNS_PER_IP="2")
    conf.write_text(subprocess.run(
        [sys.executable, "-m", "web.cli", "config", "nginx", "--port", str(server.port),
         "--listen", str(port), "--prefix", str(prefix)], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT),
        capture_output=True, text=True, check=True).stdout)
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up():
        if proc.poll() is not None:
            raise AssertionError("nginx exited: " + proc.stdout.read().decode())
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_until(up, 10, what="nginx listening")
    yield f"http://127.0.0.1:{port}", conf.read_text()
    proc.terminate()
    proc.wait(10)


def raw_upgrade(base, token):
    """A WebSocket upgrade request; (status, headers, body)."""
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/ws?token={token}", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read().decode(errors="replace")
    conn.close()
    return out


def test_nginx_proxies_sign_in_websocket_and_taps_then_sheds(nginx, server):
    base, text = nginx
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_set_header X-Real-IP $remote_addr;" in text
    assert f"server 127.0.0.1:{server.port};" in text

    player = TapgridClient(base, backoff_base=0.2, reconnect=False)
    player.guest()
    player.connect()
    assert player.wait_for(lambda: player.grid is not None, 15), "no grid through nginx"
    assert player.wait_for(lambda: player.open_cell() is not None, 15)
    col, lo, mult = player.open_cell()
    ack = player.tap(col, lo, 300, min_mult=101)
    assert ack["ok"] is True and type(ack["bet"]) is int, ack

    # The server allows one connection: its 503 and Retry-After come through as they left it.
    other = TapgridClient(base, reconnect=False)
    other.guest()
    status, headers, body = raw_upgrade(base, other.token)
    assert status == 503 and headers.get("Retry-After") == "2", (status, headers)
    assert "too many connections" in body and "(proxy)" not in body

    # nginx allows 2 connections per address: the player's socket plus one
    # request held open (headers sent, body pending) fill it; the next is shed.
    host, port = base[len("http://"):].split(":")
    hold = socket.create_connection((host, int(port)), 5)
    hold.sendall(b"POST /api/me HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    try:
        def shed():
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):
                    return False
            except urllib.error.HTTPError as e:
                return e.code == 503 and "(proxy)" in e.read().decode() and \
                    e.headers.get("Retry-After") == "2"
        wait_until(shed, 10, interval=0.1, what="nginx sheds past limit_conn")
    finally:
        hold.close()
    player.close()


def test_promtool_checks_scrape_config_and_rules(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (.ci/run installs prometheus with apt)"
    (tmp_path / "tapgrid-alerts.yml").write_text(tapgrid_config("alerts"))
    (tmp_path / "prometheus.yml").write_text(tapgrid_config("prometheus"))
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "tapgrid-alerts.yml"]):
        out = subprocess.run([promtool, *args], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
    rules = (tmp_path / "tapgrid-alerts.yml").read_text()
    for name in ("TapgridStalePrice", "TapgridDiskLow", "TapgridAckLatencyHigh",
                 "TapgridWriterBacklogGrowing", "TapgridEventLoopLag", "TapgridReplicaLag"):
        assert f"alert: {name}" in rules


def test_prometheus_with_a_metrics_token_uses_a_credentials_file(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed"
    cfg = Config()
    cfg.metrics_token = "s3cret"          # the security helper's field, when present
    text = render("prometheus", cfg)
    assert "type: Bearer" in text and "credentials_file:" in text and "s3cret" not in text
    (tmp_path / "tapgrid-alerts.yml").write_text(render("alerts", cfg))
    (tmp_path / "prometheus.yml").write_text(text)
    out = subprocess.run([promtool, "check", "config", "--syntax-only", "prometheus.yml"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed on this machine (no systemd)")
    unit = tmp_path / "tapgrid.service"
    unit.write_text(tapgrid_config("systemd", "--db", str(tmp_path / "t.db"), "--port", "9123"))
    text = unit.read_text()
    assert "--port 9123" in text and "LimitNOFILE=" in text and "Restart=on-failure" in text
    assert "TimeoutStopSec=25" in text          # drain_s (10) + Litestream's last sync
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tapgrid.service:" not in out.stderr, out.stderr


def test_systemd_unit_grants_the_commit_threads_priority_only_when_asked():
    fifo = tapgrid_config("systemd")
    assert "LimitRTPRIO=1\n" in fifo and "LimitNICE=-10\n" in fifo
    nice = render("systemd", Config(commit_priority="nice"))
    assert "LimitRTPRIO" not in nice and "LimitNICE=-10\n" in nice
    normal = render("systemd", Config(commit_priority="normal"))
    assert "LimitRTPRIO" not in normal and "LimitNICE" not in normal


def test_grafana_has_a_panel_for_every_live_metric_family(server):
    dash = json.loads(tapgrid_config("grafana"))
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        families = [f.name for f in text_string_to_metric_families(r.read().decode())]
    assert "tapgrid_replica_up" in families and len(families) > 15
    # A labelled counter's per-child X_created (e.g. tapgrid_results_created,
    # once a bet has settled) is the creation time of each series, not a
    # figure to chart; the frames counter's is charted (uptime).
    missing = [f for f in families if f not in exprs
               and not (f.endswith("_created") and f[:-len("_created")] in families)]
    assert not missing, f"no panel for {missing}"


def test_litestream_config_names_the_database_and_replica(tmp_path):
    text = tapgrid_config("litestream", "--db", str(tmp_path / "t.db"), "--replica",
                          "s3://bucket/tapgrid", "--replica-sync-ms", "500")
    assert f"path: {tmp_path}/t.db" in text and "url: s3://bucket/tapgrid" in text
    assert "sync-interval: 500ms" in text


def test_nginx_tls_render_passes_nginx_t_with_a_certificate(tmp_path):
    """The default (port 443) render: TLS with placeholder paths; with a real
    (self-signed) certificate put there, nginx accepts the file."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    assert NGINX, "nginx is not installed"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "play.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    text = render("nginx", Config(public_url="https://play.example.com"), prefix=str(tmp_path))
    placeholder = "/etc/letsencrypt/live/play.example.com/"
    assert "listen 443 ssl;" in text and placeholder + "fullchain.pem" in text
    assert "return 301 https://$host$request_uri;" in text
    conf = tmp_path / "nginx.conf"
    conf.write_text(text.replace(placeholder, str(tmp_path) + "/"))
    out = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
