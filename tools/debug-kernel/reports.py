#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Find the debug kernel's reports in one boot's logs and decode them.

reports.py CONSOLE_LOG TESTS_LOG DEBUG_DIR MODULE_KO

CONSOLE_LOG is the kernel console (first serial port), TESTS_LOG the test
stream (second serial port), where tools/vm/guest-run.sh writes the
kmemleak scans as "# kmemleak: " lines between "# tesseract-kmemleak:
<when> begin" and "... end". DEBUG_DIR is the output of
tools/debug-kernel/build.sh (vmlinux, source, installed modules), MODULE_KO
the tesseract.ko built against it.

Every report is printed with its stack decoded by the kernel's
scripts/decode_stacktrace.sh (the module's frames from MODULE_KO's debug
information). The last line is "reports=<console reports> kmemleak=<leaked
objects allocated by the module>"; kmemleak objects of other code are
printed but not counted.
"""

import os
import re
import subprocess
import sys
import tempfile

# The first line of each report the debug options print.
HEADERS = [
    r'BUG: KASAN: ',
    r'BUG: KFENCE: ',
    r'UBSAN: ',
    r'WARNING: possible circular locking dependency',
    r'WARNING: possible recursive locking',
    r'WARNING: inconsistent lock state',
    r'WARNING: possible irq lock inversion',
    r'WARNING: .*-safe -> .*-unsafe lock order',
    r'WARNING: suspicious RCU usage',
    r'WARNING: bad unlock balance',
    r'WARNING: held lock freed',
    r'WARNING: lock held when returning to user space',
    r'WARNING: Nested lock was not taken',
    r'(WARNING|BUG): .* still has locks held',
    r'BUG: MAX_LOCKDEP',
    r'BUG: MAX_STACK_TRACE_ENTRIES',
    r'BUG: sleeping function called from invalid context',
    r'BUG: scheduling while atomic',
    r'BUG: workqueue lockup',
    r'BUG: soft lockup',
    r'Watchdog detected hard LOCKUP',
    r'INFO: task .* blocked for more than',
    r'rcu: INFO: .*detected stall',
    r'list_(add|del) corruption',
    r'kernel BUG at',
    r'BUG: unable to handle',
    r'BUG: Bad page',
    r'BUG: Bad rss',
    r'general protection fault',
    r'WARNING: CPU: \d+ PID: \d+ at',
]
HEADER_RE = re.compile('|'.join(HEADERS))
END_RE = re.compile(r'---\[ end trace|^(\[[ 0-9.]+\] )?={20,}$')
MAX_LINES = 150
# An unloaded module's frame: an address without a symbol.
RAW_FRAME_RE = re.compile(r'\[<[0-9a-f]+>\] 0x[0-9a-f]+$')


def console_reports(lines):
    """Blocks of lines, one per report."""
    starts = [i for i, line in enumerate(lines) if HEADER_RE.search(line)]
    blocks = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
        stop = min(stop, start + MAX_LINES)
        block = lines[start:stop]
        for j, line in enumerate(block[1:], 1):
            if END_RE.search(line):
                block = block[:j + 1]
                break
        blocks.append(block)
    return blocks


def kmemleak_objects(lines):
    """(when, object lines) for each object of each kmemleak scan."""
    objects = []
    when = None
    for line in lines:
        m = re.match(r'# tesseract-kmemleak: (\S+) (begin|end)', line)
        if m:
            when = m.group(1) if m.group(2) == 'begin' else None
            continue
        if when is None or not line.startswith('# kmemleak: '):
            continue
        text = line[len('# kmemleak: '):]
        if text.startswith('unreferenced object'):
            objects.append((when, [text]))
        elif objects:
            objects[-1][1].append(text)
    return objects


def ours(obj_lines):
    return any('[tesseract]' in line or RAW_FRAME_RE.search(line.strip())
               for line in obj_lines)


def decode(block, debug_dir, ko):
    """The block with decode_stacktrace.sh's file:line annotations."""
    src = os.path.join(debug_dir, 'src')
    script = os.path.join(src, 'scripts', 'decode_stacktrace.sh')
    vmlinux = os.path.join(debug_dir, 'obj', 'vmlinux')
    text = '\n'.join(block) + '\n'
    if not (os.path.exists(script) and os.path.exists(vmlinux)):
        return text
    with tempfile.TemporaryDirectory() as mods:
        # decode_stacktrace.sh finds a module's .ko by name under one path.
        if os.path.exists(ko):
            os.symlink(os.path.abspath(ko), os.path.join(mods, 'tesseract.ko'))
        kmods = os.path.join(debug_dir, 'modules')
        for root, _, files in os.walk(kmods):
            for f in files:
                if f.endswith('.ko') and f != 'tesseract.ko':
                    os.symlink(os.path.join(root, f), os.path.join(mods, f))
        try:
            res = subprocess.run(['bash', script, vmlinux, src, mods],
                                 input=text, capture_output=True, text=True,
                                 timeout=600, check=False)
        except subprocess.TimeoutExpired:
            return text
        return res.stdout if res.stdout.strip() else text


def read_lines(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return [line.rstrip('\r\n') for line in f]
    except OSError:
        return []


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    console, tests, debug_dir, ko = sys.argv[1:]

    blocks = console_reports(read_lines(console))
    for n, block in enumerate(blocks, 1):
        print(f'--- debug kernel report {n} of {len(blocks)} ({console})')
        sys.stdout.write(decode(block, debug_dir, ko))

    leaks = 0
    for when, obj in kmemleak_objects(read_lines(tests)):
        mine = ours(obj)
        leaks += mine
        print(f'--- kmemleak ({when}), '
              f'{"allocated by the module" if mine else "not the module"}')
        sys.stdout.write(decode(obj, debug_dir, ko))

    print(f'reports={len(blocks)} kmemleak={leaks}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
