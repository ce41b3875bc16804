"""`python -m harness.worker PAYLOAD_JSON`: one run in a process of its own (launched by the local executor).

Exit status: 0 complete, 1 failed (reason in run.json), 130 interrupted (resumable), 75 busy
(another process holds the run's claim; nothing was touched).
"""

from __future__ import annotations

import json
import signal
import sys

from harness.executors import BUSY_EXIT, INTERRUPTED_EXIT, run_in_this_process


def main(argv: list[str]) -> int:
    payload = json.loads(argv[0])
    try:
        status = run_in_this_process(payload)
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    return {"complete": 0, "busy": BUSY_EXIT}.get(status, 1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a terminated worker records `interrupted`
    sys.exit(main(sys.argv[1:]))
