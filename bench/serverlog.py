"""What our server's own log says about its start: when each step happened, from the spawn."""

from __future__ import annotations

import json
import time
from datetime import datetime

# Our server's log messages for its start-up steps, and the keys they are reported under.
EVENTS = {
    "serving": "log_serving_s",  # HTTP transports
    "serving on stdio": "log_serving_s",
    "embedding model loaded": "log_model_loaded_s",
    "ready": "log_ready_s",
}


def start_timeline(log_text: str, started: float) -> dict[str, float]:
    """Seconds from the spawn (`started`, a time.perf_counter() taken right before it) to the first
    JSON log line of each step: transport up, model loaded, ready (engine open too)."""
    spawned_wall = time.time() - (time.perf_counter() - started)
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        try:
            event = json.loads(line)
            key = EVENTS.get(event.get("message"))
            if key and key not in found:
                found[key] = round(datetime.fromisoformat(event["ts"]).timestamp() - spawned_wall, 3)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return found
