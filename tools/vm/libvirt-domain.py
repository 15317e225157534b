#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Adapt the admin guide's libvirt domain for the nested test guest.

selftests/vhost_user_blk.c starts the nested guest through libvirtd from
Documentation/examples/libvirt-domain.xml, changed only where the admin
guide says a user adapts it (name, memory, network) and where the test
kernel differs from a KVM host: no /dev/kvm (TCG, a plain CPU model, one
vCPU: a nested TCG guest is slow enough), a kernel and initramfs booted
directly, a reboot ending the domain (a guest that panics must not boot
again), the serial console to a file and no other console, and the
test's daemon socket. The disk (its queues and reconnection included)
and the memory backing stay as they are: they are what is tested. With
one vCPU the guest's driver uses one of the disk's two queues.

usage: libvirt-domain.py EXAMPLE OUT NAME SOCKET KERNEL INITRD CONSOLE
"""

import sys
import xml.etree.ElementTree as ET


def child(parent, tag, **attrs):
    node = ET.SubElement(parent, tag)
    for key, value in attrs.items():
        node.set(key, value)
    return node


def adapt(example, name, socket, kernel, initrd, console):
    tree = ET.parse(example)
    dom = tree.getroot()
    dom.set('type', 'qemu')
    dom.find('name').text = name
    for tag in ('memory', 'currentMemory'):
        dom.find(tag).set('unit', 'MiB')
        dom.find(tag).text = '256'
    dom.find('vcpu').text = '1'

    os_node = dom.find('os')
    os_node.remove(os_node.find('boot'))
    child(os_node, 'kernel').text = kernel
    child(os_node, 'initrd').text = initrd
    child(os_node, 'cmdline').text = \
        'console=ttyS0 loglevel=4 panic=-1 no_timer_check'

    # TCG has no host CPU to pass through; the CPU of the direct QEMU run.
    cpu = dom.find('cpu')
    cpu.attrib.clear()
    cpu.set('mode', 'custom')
    cpu.set('match', 'exact')
    child(cpu, 'model', fallback='forbid').text = 'qemu64'
    child(cpu, 'feature', policy='disable', name='cx16')

    # The guest powers off when done; a reboot is a failure, not a loop.
    dom.find('on_reboot').text = 'destroy'

    devices = dom.find('devices')
    disks = devices.findall("disk[@type='vhostuser']")
    if len(disks) != 1:
        sys.exit('libvirt-domain.py: expected one vhost-user disk')
    disks[0].find('source').set('path', socket)
    for tag in ('interface', 'serial', 'console'):
        for node in devices.findall(tag):
            devices.remove(node)
    serial = child(devices, 'serial', type='file')
    child(serial, 'source', path=console)
    child(serial, 'target', port='0')
    return tree


def main():
    if len(sys.argv) != 8:
        sys.exit(__doc__.strip().splitlines()[-1])
    example, out = sys.argv[1:3]
    tree = adapt(example, *sys.argv[3:])
    tree.write(out)


if __name__ == '__main__':
    main()
