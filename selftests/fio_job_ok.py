#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""fio_job_ok.py FIO_JSON: exit 0 if the first job of a fio JSON report had
no error and moved data (fio exits 0 after some setup failures, so its own
status proves nothing)."""
import json
import sys

job = json.load(open(sys.argv[1]))["jobs"][0]
moved = job["read"]["io_bytes"] + job["write"]["io_bytes"]
sys.exit(0 if job["error"] == 0 and moved > 0 else 1)
