#!/usr/bin/env python3
"""Writes infra/grafana/dashboards/ws-gateway.json. Edit here, run it, commit both.

Metric names are the Prometheus forms of the OpenTelemetry instruments in
packages/telemetry/src/metrics.ts, as the collector's prometheus exporter writes them: dots become
underscores, a unit of seconds adds `_seconds`, counters end in `_total`; attribute keys likewise
(db.operation.name -> db_operation_name). packages/telemetry/test/infra.test.ts keeps them in sync.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
R = "$__rate_interval"
SEL = 'job=~"$job", instance=~"$instance"'
panels = []
y = 0
pid = 1


def row(title):
    global y, pid
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    pid += 1
    y += 1


def panel(title, targets, x, w, h=8, unit="short", kind="timeseries", desc="", stack=False):
    global pid
    p = {"type": kind, "title": title, "id": pid, "datasource": DS, "description": desc,
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l}
                     for i, (e, l) in enumerate(targets)]}
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area"}
    pid += 1
    panels.append(p)


def rate(metric, by=None, extra=""):
    sel = SEL + extra
    inner = f"rate({metric}{{{sel}}}[{R}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(q, metric, by="le"):
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}{{{SEL}}}[{R}])))"


row("Connections")
panel("Open connections (cluster)", [(f"sum(websocket_connection_active{{{SEL}}})", "open")], 0, 4, kind="stat",
      desc="Open WebSocket connections over all replicas (websocket.connection.active).")
panel("Open connections per replica", [(f"sum by (instance) (websocket_connection_active{{{SEL}}})", "{{instance}}")],
      4, 10, stack=True,
      desc="websocket.connection.active by replica (instance = service.instance.id = the replica id).")
panel("Upgrades accepted / rejected by reason", [
    (rate("websocket_connection_accepted_total"), "accepted"),
    (rate("websocket_upgrade_rejected_total", "reason"), "rejected: {{reason}}")], 14, 10, unit="reqps",
    desc="websocket.connection.accepted and websocket.upgrade.rejected (reason = the CONTRACT §4 error code).")
y += 8
panel("Connection errors by reason", [(rate("websocket_connection_error_total", "reason"), "{{reason}}")], 0, 8,
      unit="reqps", desc="websocket.connection.error: abnormal closes (1006, 1008, 1009, 1011...) and failed upgrades.")
panel("Closes by code", [(rate("websocket_connection_closed_total", "code"), "{{code}}")], 8, 8, unit="reqps",
      desc="websocket.connection.closed by close code (it also carries path, origin and a duration class).")
panel("Connection duration p50 / p95", [
    (quantile(0.5, "websocket_connection_duration_seconds_bucket"), "p50"),
    (quantile(0.95, "websocket_connection_duration_seconds_bucket"), "p95")], 16, 8, unit="s",
    desc="websocket.connection.duration of the connections that closed.")
y += 8
row("Messages")
panel("Message rate by agent_type", [(rate("websocket_message_received_total", "agent_type"), "{{agent_type}}")],
      0, 8, unit="reqps", stack=True, desc="websocket.message.received (valid messages handed to an agent).")
panel("Rate-limit hits and invalid frames", [
    (rate("websocket_rate_limit_exceeded_total"), "rate limited"),
    (rate("websocket_message_rejected_total", "reason"), "invalid: {{reason}}")], 8, 8, unit="reqps",
    desc="websocket.rate_limit.exceeded (frames dropped by the per-user limit) and websocket.message.rejected.")
panel("Reply latency p50 / p99 by agent_type", [
    (quantile(0.99, "websocket_message_reply_latency_seconds_bucket", "le, agent_type"), "p99 {{agent_type}}"),
    (quantile(0.5, "websocket_message_reply_latency_seconds_bucket", "le, agent_type"), "p50 {{agent_type}}")],
    16, 8, unit="s", desc="websocket.message.reply_latency: message received to first reply sent.")
y += 8
panel("Agent queue depth", [(f"max by (agent_type) (websocket_agent_queue_depth{{{SEL}}})", "{{agent_type}}")], 0, 8,
      desc="websocket.agent.queue_depth: requests not yet taken by a worker. The queue is shared, "
           "so every replica reports the same value: max, not sum.")
panel("Awaiting a reply, per replica", [(f"sum by (instance) (websocket_requests_pending{{{SEL}}})", "{{instance}}")],
      8, 8, stack=True, desc="websocket.requests.pending: messages handed to agents and not yet answered in full.")
panel("Backpressure and dropped replies", [
    (rate("websocket_backpressure_dropped_total"), "slow reader closed"),
    (rate("websocket_reply_dropped_total", "reason"), "reply dropped: {{reason}}")], 16, 8, unit="reqps",
    desc="websocket.backpressure.dropped and websocket.reply.dropped.")
y += 8
row("Redis")
panel("Redis latency p99 by command", [
    (quantile(0.99, "db_client_operation_duration_seconds_bucket", "le, db_operation_name"), "p99 {{db_operation_name}}"),
    (quantile(0.5, "db_client_operation_duration_seconds_bucket"), "p50 all")], 0, 8, unit="s",
    desc="db.client.operation.duration of the gateway's Redis commands (blocking reads excluded).")
panel("Redis errors", [(rate("db_client_operation_duration_seconds_count", "db_operation_name", ', error_type!=""'),
                        "{{db_operation_name}}")], 8, 8, unit="reqps",
      desc="Redis commands that failed (timeouts, connection lost).")
panel("Fallback decisions while Redis is down", [
    (rate("websocket_limits_fallback_total", "store, decision"), "{{store}}: {{decision}}")], 16, 8, unit="reqps",
    stack=True,
    desc="websocket.limits.fallback: limits decided per replica (local_allowed / local_denied) or refused "
         "(closed mode) while Redis was unreachable. Anything here means Redis is down.")
y += 8

dashboard = {
    "title": "ws-gateway",
    "uid": "ws-gateway",
    "description": "WebSocket gateway fleet: what on-call looks at first (docs/OBSERVABILITY.md).",
    "tags": ["ws-gateway", "websocket", "opentelemetry"],
    "timezone": "browser",
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "schemaVersion": 39,
    "version": 1,
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
         "current": {"text": "Prometheus", "value": "prometheus"}},
        {"name": "job", "type": "query", "datasource": DS, "label": "service",
         "query": {"query": "label_values(websocket_connection_active, job)", "refId": "job"},
         "definition": "label_values(websocket_connection_active, job)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
         "current": {"text": "All", "value": "$__all"}},
        {"name": "instance", "type": "query", "datasource": DS, "label": "replica",
         "query": {"query": 'label_values(websocket_connection_active{job=~"$job"}, instance)', "refId": "instance"},
         "definition": 'label_values(websocket_connection_active{job=~"$job"}, instance)',
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
         "current": {"text": "All", "value": "$__all"}},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "ws-gateway.json")
with open(out, "w") as f:
    f.write(json.dumps(dashboard, indent=2) + "\n")
