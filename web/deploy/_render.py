"""Deployment files rendered from the one ``Config``, so the proxy, the
unit, the scrape config and the alerts agree with the server they front.

Templates are package data (``templates/*.in``) with ``{{name}}``
placeholders; what depends on choices (TLS or not, a metrics token, a
replica) is filled in here.

    >>> from actors import Config
    >>> text = render("nginx", Config(port=9000), listen=8443)
    >>> "server 127.0.0.1:9000;" in text and "listen 8443;" in text
    True
"""
import json
import os
import re
import shutil
import sys
from importlib import resources
from urllib.parse import urlsplit

from actors import litestream_config
from actors.store import FAVOUR_NICE, FAVOUR_RT_PRIORITY

from ._grafana import dashboard

__all__ = ["render", "KINDS"]

KINDS = ("nginx", "systemd", "prometheus", "alerts", "grafana", "litestream")


def _template(name, values):
    text = resources.files(__package__).joinpath("templates", name).read_text()

    def sub(m):
        return str(values[m.group(1)])
    return re.sub(r"\{\{(\w+)\}\}", sub, text)


def _upstream(cfg):
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "", "::") else cfg.host
    return f"{host}:{cfg.port}"


def _nofile(cfg):
    # two descriptors per proxied player (nginx) or one (server), plus files
    return max(65536, 2 * cfg.max_connections + 4096)


def render_nginx(cfg, listen=None, server_name=None, prefix=None):
    name = server_name or (urlsplit(cfg.public_url).hostname if cfg.public_url else None) or "_"
    listen = 443 if listen is None else listen
    tls = listen == 443
    if tls:
        cert = name if name != "_" else "example.com"
        listen_block = (
            "        listen 443 ssl;\n        listen [::]:443 ssl;\n"
            f"        # TLS: fill in your certificate (e.g. certbot --nginx -d {cert})\n"
            f"        ssl_certificate /etc/letsencrypt/live/{cert}/fullchain.pem;\n"
            f"        ssl_certificate_key /etc/letsencrypt/live/{cert}/privkey.pem;\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
            "        ssl_session_cache shared:tapgrid_tls:10m;\n"
            "        add_header Strict-Transport-Security \"max-age=31536000\" always;")
        redirect = ("    server {\n        listen 80;\n        listen [::]:80;\n"
                    f"        server_name {name};\n        return 301 https://$host$request_uri;\n"
                    "    }\n")
    else:
        listen_block = (
            f"        listen {listen};\n"
            "        # TLS placeholders (use port 443, or fill these in):\n"
            "        # listen 443 ssl;\n"
            "        # ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;\n"
            "        # ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem;")
        redirect = ""
    total = cfg.max_connections + max(100, cfg.max_connections // 20)
    return _template("nginx.conf.in", {
        "upstream": _upstream(cfg), "max_connections": cfg.max_connections,
        "prefix": os.path.abspath(prefix) if prefix else "/var/lib/nginx/tapgrid",
        "nofile": _nofile(cfg) * 2, "worker_connections": 2 * total + 1024,
        "auth_rate": max(1, int(cfg.auth_rate)), "auth_burst": max(1, cfg.auth_burst),
        "redirect_block": redirect, "listen_block": listen_block, "server_name": name,
        "per_ip": cfg.proxy_conns_per_ip, "total_conns": total,
        "tick_ms": cfg.tick_interval_ms, "fanout_hz": cfg.fanout_hz})


def _tapgrid_exe():
    here = os.path.join(os.path.dirname(sys.executable), "tapgrid")
    if os.access(here, os.X_OK):
        return os.path.abspath(here)
    return shutil.which("tapgrid") or f"{sys.executable} -m web.cli"


def render_systemd(cfg, config_path=None, **_):
    db = os.path.abspath(cfg.db)
    args = [_tapgrid_exe(), "serve"]
    if config_path:
        args += ["--config", os.path.abspath(config_path)]
    args += ["--db", db, "--host", cfg.host, "--port", str(cfg.port)]
    if cfg.replica:
        args += ["--replica", cfg.replica]
    if cfg.redis:
        args += ["--redis", cfg.redis]
    paths = {os.path.dirname(db)}
    if cfg.archive_dir:
        paths.add(os.path.abspath(cfg.archive_dir))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return _template("tapgrid.service.in", {
        "listen": f"{cfg.host}:{cfg.port}", "readme": os.path.join(os.path.dirname(root), "README.md"),
        "exec_start": " ".join(args), "workdir": os.path.dirname(db), "nofile": _nofile(cfg),
        "drain_s": int(cfg.drain_s), "stop_s": int(cfg.drain_s) + 15,
        "rw_paths": " ".join(sorted(paths)), "priority_limits": _priority_limits(cfg)})


def _priority_limits(cfg):
    # What lets the commit thread take the priority commit_priority asks
    # for when the unit runs as a user without CAP_SYS_NICE.
    how = getattr(cfg, "commit_priority", "fifo")
    if how == "normal":
        return ""
    lines = ["# the Writer's commit thread ahead of other threads for a CPU (commit_priority)"]
    if how == "fifo":
        lines.append(f"LimitRTPRIO={FAVOUR_RT_PRIORITY}")
    lines.append(f"LimitNICE={FAVOUR_NICE}")
    return "\n".join(lines) + "\n"


def render_prometheus(cfg, rules_file="tapgrid-alerts.yml", **_):
    token = getattr(cfg, "metrics_token", None)
    auth = ""
    if token:
        auth = ("    authorization:\n      type: Bearer\n"
                "      # the server's metrics_token, alone in this file (mode 0600)\n"
                "      credentials_file: /etc/prometheus/tapgrid-metrics.token\n")
    ls = ""
    if cfg.litestream_addr:
        ls = ("  - job_name: tapgrid-litestream\n    static_configs:\n"
              f"      - targets: [\"{cfg.litestream_addr}\"]\n")
    return _template("prometheus.yml.in", {"rules_file": rules_file, "auth_block": auth,
                                           "target": _upstream(cfg), "litestream_block": ls})


def _min_free_bytes(cfg):
    v = cfg.min_free_disk
    if isinstance(v, str) and v.endswith("%"):
        d = os.path.dirname(os.path.abspath(cfg.db))
        while not os.path.isdir(d):
            d = os.path.dirname(d)
        return int(shutil.disk_usage(d).total * float(v[:-1]) / 100)
    return int(v)


def render_alerts(cfg, **_):
    min_free = max(_min_free_bytes(cfg), 1 << 30)
    return _template("alerts.yml.in", {
        "stale_s": max(5, 2 * cfg.tick_interval_ms // 1000 + 3), "min_free": min_free,
        "disk_warn": 2 * min_free, "backlog": max(1000, cfg.writer_queue // 10),
        "max_lag_s": cfg.max_loop_lag_ms / 1000, "lag_warn_s": cfg.max_loop_lag_ms / 2000,
        "sync_s": cfg.replica_sync_ms / 1000})


def render(kind, cfg, listen=None, server_name=None, prefix=None, config_path=None):
    """The file for ``kind`` (one of ``KINDS``) as text."""
    if kind == "nginx":
        return render_nginx(cfg, listen, server_name, prefix)
    if kind == "systemd":
        return render_systemd(cfg, config_path)
    if kind == "prometheus":
        return render_prometheus(cfg)
    if kind == "alerts":
        return render_alerts(cfg)
    if kind == "grafana":
        return json.dumps(dashboard(cfg), indent=2) + "\n"
    if kind == "litestream":
        return litestream_config(cfg)
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
