#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""rstcheck.py FILE...: report reStructuredText warnings and errors.

Sphinx's toctree directive is accepted (its content is not checked); exits
1 if any file has a problem.
"""
import io
import sys

import docutils.core
from docutils.parsers.rst import Directive, directives


class Toctree(Directive):
    has_content = True
    optional_arguments = 10
    option_spec = {"maxdepth": directives.unchanged}

    def run(self):
        return []


def main(paths):
    directives.register_directive("toctree", Toctree)
    bad = 0
    for path in paths:
        report = io.StringIO()
        with open(path) as f:
            docutils.core.publish_string(
                f.read(), source_path=path, writer_name="null",
                settings_overrides={"warning_stream": report,
                                    "report_level": 2, "halt_level": 5})
        if report.getvalue().strip():
            print(report.getvalue().rstrip())
            bad += 1
    print(f"rst: {len(paths)} files")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
