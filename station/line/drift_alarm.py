"""The drift alarm: the reference charts' verdict published to MQTT (retained, QoS 1).

``--alarm-mqtt mqtt://HOST:PORT/TOPIC``: one JSON message ``{"drifting": bool, "flagged":
[{station, fixture}], "charts": n, "utc": ...}`` so a line dashboard or the station UI can show a
badge. Delivery never changes the command's exit code: a broker that cannot be reached is
reported on stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any, TextIO
from urllib.parse import urlparse


def publish_alarm(url: str, result: dict[str, Any], err: TextIO, timeout: float = 5.0) -> bool:
    """Publish the alarm message; True when the broker acknowledged it."""
    target = urlparse(url)
    if target.scheme != "mqtt" or not target.hostname or not target.path.strip("/"):
        print(f"station stats: --alarm-mqtt {url!r}: expected mqtt://HOST[:PORT]/TOPIC", file=err)
        return False
    import paho.mqtt.client as mqtt

    payload = json.dumps({"drifting": bool(result["flagged"]), "flagged": result["flagged"],
                          "charts": len(result["charts"]),
                          "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"eol-drift-{os.getpid()}", clean_session=True)
    try:
        client.connect(target.hostname, target.port or 1883, keepalive=10)
        client.loop_start()
        info = client.publish(target.path.strip("/"), payload, qos=1, retain=True)
        info.wait_for_publish(timeout)
        ok = info.is_published()
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"station stats: drift alarm not delivered to {target.hostname}: {exc}", file=err)
        return False
    finally:
        client.loop_stop()
        client.disconnect()
    if not ok:
        print(f"station stats: drift alarm not acknowledged by {target.hostname} in {timeout} s", file=err)
    return ok
