"""`failoverctl status --local`: one node's own view, from its `/status` endpoint
(observe/endpoints.py), for when ZooKeeper is down and `status` can only say
UNKNOWN. It is one node's last look, not the cluster's state: it is labelled so,
and ZooKeeper is not consulted at all.

Exit codes: 0 the node answered, its loop is alive, it is healthy and, if it says
it is active, its local lease is still valid; 1 it answered with anything less;
3 the endpoint does not answer either (the state is as unknown as before).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from failoverd.cli.common import command_config
from failoverd.cli.exits import OK, REFUSED, Unreachable
from failoverd.cli.terminal import printable
from failoverd.config import MetricsConfig

# The port metrics.listen examples use; a node without metrics.listen serves none.
DEFAULT_ENDPOINT = "127.0.0.1:9468"
TIMEOUT = 3.0
# A /status document is a few hundred bytes; more is not failoverd answering.
BODY_LIMIT = 64 * 1024
LABEL = "ZooKeeper not consulted"


def endpoint_url(metrics: MetricsConfig | None) -> str:
    """The node's own endpoint as this machine reaches it: a wildcard listen
    address (0.0.0.0, ::) is reached over loopback."""
    if metrics is None:
        return f"http://{DEFAULT_ENDPOINT}"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(metrics.host, metrics.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{metrics.port}"


def status_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"expected http://HOST:PORT, got {url!r}", param_hint="--url")
    return url if url.endswith("/status") else f"{url}/status"


def fetch(url: str) -> dict[str, Any]:
    """The node's /status document, or Unreachable (exit 3) saying why not."""
    # No proxy from the environment: the node's own endpoint is asked directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            body = response.read(BODY_LIMIT + 1)
    except urllib.error.HTTPError as e:
        raise Unreachable(f"the node's endpoint {url} answered HTTP {e.code}; {LABEL}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise Unreachable(f"no answer from the node's endpoint {url} ({reason}); {LABEL}") from None
    try:
        document = json.loads(body) if len(body) <= BODY_LIMIT else None
    except ValueError:
        document = None
    if not isinstance(document, dict) or "loop_alive" not in document:
        raise Unreachable(f"{url} did not answer with failoverd's /status document; {LABEL}")
    return document


def judge(doc: dict[str, Any]) -> tuple[int, str]:
    """(exit code, one sentence) for a node's own view."""
    if not doc.get("node"):
        return REFUSED, "the daemon has published no view yet (starting)"
    if not doc.get("loop_alive"):
        return REFUSED, "its main loop is stalled: this view may be stale"
    if not doc.get("healthy"):
        return REFUSED, "it fails its health checks"
    if doc.get("role") == "active" and not doc.get("lease_valid"):
        return REFUSED, "it says active but its local lease has run out: it must stop serving"
    return OK, f"{doc.get('role')}, healthy, loop alive"


def show(url: str, doc: dict[str, Any], as_json: bool) -> int:
    code, sentence = judge(doc)
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))  # the node's document, as served
        return code
    node = doc.get("node") or "(unknown node)"
    click.echo(printable(f"local view of {node} (cluster {doc.get('cluster', '-')}), {LABEL}"))
    click.echo(printable(f"  from {url}"))
    epoch = "-" if doc.get("epoch") is None else doc["epoch"]
    click.echo(
        printable(
            f"  role: {doc.get('role', '-')}   epoch: {epoch}   "
            f"health: {'healthy' if doc.get('healthy') else 'UNHEALTHY'}   "
            f"eligible: {'yes' if doc.get('eligible') else 'no'}   "
            f"maintenance: {'ON' if doc.get('maintenance') else 'off'}"
        )
    )
    left = doc.get("lease_remaining")
    left = left if isinstance(left, int | float) and not isinstance(left, bool) else 0
    lease = f"valid, {left:g}s left" if doc.get("lease_valid") else "none"
    holder = doc.get("lease_holder") or "-"
    click.echo(printable(f"  local lease: {lease}   lease holder as last seen: {holder}"))
    click.echo(f"  main loop: {'alive' if doc.get('loop_alive') else 'STALLED'}")
    for key in ("reason", "why"):
        if doc.get(key):
            click.echo(printable(f"  {key}: {doc[key]}"))
    click.echo(printable(f"verdict (this node only): {sentence}"))
    return code


def local_status(ctx: click.Context, url: str | None, as_json: bool, local: bool) -> int:
    """`status --local [--url URL]`: the exit code; the endpoint is the config's
    metrics.listen unless --url names it."""
    if not local:
        raise click.UsageError("--url goes with --local")
    if url is None:
        url = endpoint_url(command_config(ctx).metrics)
    target = status_url(url)
    return show(target, fetch(target), as_json)
