"""The Grafana dashboard: one panel per metric family ``/metrics`` exports
(tests/web/test_deploy.py checks that against a live server), plus
Litestream's own families when a replica is on.

    >>> from actors import Config
    >>> d = dashboard(Config())
    >>> any("tapgrid_taps_total" in t["expr"] for p in d["panels"] for t in p["targets"])
    True
"""
__all__ = ["dashboard", "PANELS"]

_Q = "histogram_quantile({q}, sum by (le) (rate({m}_bucket[$__rate_interval])))"

#: (family, title, unit, [(expr, legend)]); family is prometheus_client's name
PANELS = [
    ("tapgrid_taps", "Taps by outcome", "reqps",
     [("sum by (outcome) (rate(tapgrid_taps_total[$__rate_interval]))", "{{outcome}}")]),
    ("tapgrid_tap_latency_seconds", "Tap ack latency", "s",
     [(_Q.format(q=q, m="tapgrid_tap_latency_seconds"), f"p{int(q * 100)}")
      for q in (0.5, 0.99)]),
    ("tapgrid_results", "Settled bets by outcome", "ops",
     [("sum by (outcome) (rate(tapgrid_results_total[$__rate_interval]))", "{{outcome}}")]),
    ("tapgrid_ws_frames_received", "WebSocket frames received", "ops",
     [("rate(tapgrid_ws_frames_received_total[$__rate_interval])", "frames/s")]),
    # prometheus-client exports a counter's creation time: the server's uptime
    ("tapgrid_ws_frames_received_created", "Uptime", "s",
     [("time() - tapgrid_ws_frames_received_created", "uptime")]),
    ("tapgrid_writer_batch_size", "Bets per group commit", "short",
     [(_Q.format(q=q, m="tapgrid_writer_batch_size"), f"p{int(q * 100)}") for q in (0.5, 0.99)]),
    ("tapgrid_writer_commit_seconds", "Group commit (write + fsync)", "s",
     [(_Q.format(q=q, m="tapgrid_writer_commit_seconds"), f"p{int(q * 100)}")
      for q in (0.5, 0.99)]),
    ("tapgrid_writer_pending_taps", "Taps waiting for the Writer", "short",
     [("tapgrid_writer_pending_taps", "pending")]),
    ("tapgrid_mailbox_depth", "Mailbox depth", "short",
     [("tapgrid_mailbox_depth", "{{actor}}")]),
    ("tapgrid_mailbox_peak", "Mailbox peak", "short", [("tapgrid_mailbox_peak", "{{actor}}")]),
    ("tapgrid_actor_processed", "Messages processed", "ops",
     [("rate(tapgrid_actor_processed[$__rate_interval])", "{{actor}}")]),
    ("tapgrid_actor_restarts", "Actor restarts", "short",
     [("tapgrid_actor_restarts", "{{actor}}")]),
    ("tapgrid_dead_letters", "Dead letters", "short", [("tapgrid_dead_letters", "dead letters")]),
    ("tapgrid_connections", "Player connections", "short",
     [("tapgrid_connections", "connections")]),
    ("tapgrid_handshakes_shed", "Upgrades shed (503)", "short",
     [("rate(tapgrid_handshakes_shed[$__rate_interval])", "shed/s")]),
    ("tapgrid_teardowns_parked", "Teardowns held back and urgent wake-ups (taps first)", "ops",
     [("rate(tapgrid_teardowns_parked_total[$__rate_interval])", "teardowns parked/s"),
      ("tapgrid_teardowns_waiting", "teardowns waiting"),
      ("rate(tapgrid_urgent_wakes_total[$__rate_interval])", "urgent wakes/s")]),
    ("tapgrid_gc_pause_seconds", "Garbage-collector pauses (the loop stopped)", "s",
     [(_Q.format(q="0.99", m="tapgrid_gc_pause_seconds"), "p99"),
      ("max(tapgrid_gc_pause_worst_seconds)", "worst since start")]),
    ("tapgrid_handshakes_in_progress", "Upgrades in progress and queued (HandshakeGate)", "short",
     [("tapgrid_handshakes_in_progress", "in progress"), ("tapgrid_handshakes_waiting", "waiting")]),
    ("tapgrid_handshakes_queued", "Upgrades queued and refused at the HandshakeGate", "ops",
     [("rate(tapgrid_handshakes_queued_total[$__rate_interval])", "queued/s"),
      ("rate(tapgrid_handshakes_gate_refused_total[$__rate_interval])", "refused/s")]),
    ("tapgrid_fanout_broadcasts", "Fan-out: broadcasts, and connections that skipped one", "ops",
     [("rate(tapgrid_fanout_broadcasts_total[$__rate_interval])", "broadcasts/s"),
      ("rate(tapgrid_fanout_skipped_total[$__rate_interval])", "skipped/s")]),
    ("tapgrid_connections_limited", "Per-client limits hit", "short",
     [("sum by (reason) (rate(tapgrid_connections_limited_total[$__rate_interval]))", "{{reason}}")]),
    ("tapgrid_limit", "Configured per-client limits", "short", [("tapgrid_limit", "{{name}}")]),
    ("tapgrid_loop_lag_seconds", "Event-loop lag", "s", [("tapgrid_loop_lag_seconds", "lag")]),
    ("tapgrid_loop_lag_sample_seconds", "Event-loop lag, every 10 ms sample", "s",
     [(_Q.format(q=q, m="tapgrid_loop_lag_sample_seconds"), f"p{int(q * 100)}")
      for q in (0.5, 0.99)]),
    # the worst sample since the previous scrape (reset by each scrape)
    ("tapgrid_loop_lag_max_seconds", "Event-loop lag, worst per scrape", "s",
     [("tapgrid_loop_lag_max_seconds", "max")]),
    ("tapgrid_verify_batches", "Signature batches to the verify threads", "ops",
     [("rate(tapgrid_verify_batches_total[$__rate_interval])", "batches/s")]),
    ("tapgrid_verify_held_back", "Taps held back to keep a connection's order", "ops",
     [("rate(tapgrid_verify_held_back_total[$__rate_interval])", "held/s")]),
    ("tapgrid_price_age_seconds", "Price age", "s", [("tapgrid_price_age_seconds", "age")]),
    ("tapgrid_market_open", "Market open", "short", [("tapgrid_market_open", "open")]),
    # several markets (issue 11): each one's state and grid age, and the age
    # of the price behind accepted multipliers (at most 250 ms, SPEC 7)
    ("tapgrid_market_state_open", "Markets open", "short",
     [("tapgrid_market_state_open", "{{market_id}}")]),
    ("tapgrid_market_grid_age_seconds", "Grid age per market", "s",
     [("tapgrid_market_grid_age_seconds", "{{market_id}}")]),
    ("tapgrid_tap_price_age_seconds", "Price age behind accepted taps", "s",
     [("tapgrid_tap_price_age_seconds", "p{{quantile}}")]),
    ("tapgrid_tap_price_aged", "Accepted taps priced", "ops",
     [("rate(tapgrid_tap_price_aged_total[$__rate_interval])", "taps/s"),
      ("rate(tapgrid_taps_price_too_old_total[$__rate_interval])", "refused: price too old")]),
    ("tapgrid_taps_repriced", "Columns priced from a tick newer than the grid", "ops",
     [("rate(tapgrid_taps_repriced_total[$__rate_interval])", "per s"),
      ("rate(tapgrid_columns_priced_total[$__rate_interval])", "columns priced (all)"),
      ("rate(tapgrid_column_price_hits_total[$__rate_interval])", "read, not priced again")]),
    ("tapgrid_price_source_age_seconds", "Price source age", "s",
     [("tapgrid_price_source_age_seconds", "{{asset}} {{source}}")]),
    ("tapgrid_price_source_deviation_bp", "Price source deviation from the median", "short",
     [("tapgrid_price_source_deviation_bp", "{{asset}} {{source}} (bp)")]),
    ("tapgrid_price_source_fresh", "Price source fresh", "short",
     [("tapgrid_price_source_fresh", "{{asset}} {{source}}")]),
    ("tapgrid_price_sources_fresh", "Fresh sources vs the quorum", "short",
     [("tapgrid_price_sources_fresh", "{{asset}} fresh"),
      ("tapgrid_price_quorum", "{{asset}} quorum")]),
    ("tapgrid_price_state", "Price state", "short",
     [("tapgrid_price_state == 1", "{{asset}} {{state}}")]),
    ("tapgrid_disk_free_bytes", "Disk free", "bytes", [("tapgrid_disk_free_bytes", "free")]),
    # The edge: payouts over stakes of settled bets per multiplier bucket
    # (the promise is 0.95; the capped 100x bucket returns less by design).
    ("tapgrid_settled_payout", "Return to player by multiplier bucket (1 h)", "percentunit",
     [("sum by (bucket) (increase(tapgrid_settled_payout_total[1h])) / "
       "sum by (bucket) (increase(tapgrid_settled_stake_total[1h]))", "{{bucket}}")]),
    ("tapgrid_settled_bets", "Settled bets by multiplier bucket", "ops",
     [("sum by (bucket) (rate(tapgrid_settled_bets_total[$__rate_interval]))", "{{bucket}}")]),
    ("tapgrid_replica_up", "Litestream running", "short", [("tapgrid_replica_up", "up")]),
    ("tapgrid_replica_restarts", "Litestream restarts", "short",
     [("tapgrid_replica_restarts", "restarts")]),
    ("litestream_sync_count", "Replica syncs", "ops",
     [("rate(litestream_sync_count[$__rate_interval])", "syncs/s"),
      ("rate(litestream_sync_error_count[$__rate_interval])", "errors/s")]),
    ("litestream_wal_size", "WAL size", "bytes", [("litestream_wal_size", "wal")]),
]


def dashboard(cfg):
    panels = []
    for i, (family, title, unit, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "gridPos": {"x": (i % 3) * 8, "y": (i // 3) * 8, "w": 8, "h": 8},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "expr": e, "legendFormat": legend}
                        for j, (e, legend) in enumerate(targets)],
            "description": f"metric family {family}"})
    return {
        "title": f"tapgrid ({cfg.host}:{cfg.port})", "uid": "tapgrid", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "tags": ["tapgrid"], "panels": panels,
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "annotations": {"list": []},
    }
