"""The VM lab: qemu guests with real DRBD, LVM and kernel NFS (`hasync lab up --vm`).

Python API (tests): :class:`VmLab` (``driver.py``); image: :func:`ensure_image`;
the storage steps by hand: ``manual``; issue 6's scenario: ``scenario``. The
``hasync lab VERB`` handlers for VM labs are in ``verbs.py``. See docs/vm.md.

    driver     the VM lab (VmLab): create, boot, power, cables, status, down
    qemu       one guest's qemu command line (pure)
    wires      the host's wires into a guest: qemu monitor, console agent
    image      the cached Debian 12 guest image: its key, the cache, pruning
    image_build  what goes into the image and building it (once)
    seed       per-VM seed disks: the hasync source, the guest scripts, the identity
    manual     DRBD/LVM/NFS steps by hand, the NFS client's record stream
    scenario   crash, takeover, client resumed, rejoin: measured step by step
    pacemaker  the same with the chain handed to Pacemaker (issue 16's trial)
    verbs      up, down, status, exec, crash, fence, cut, heal, start
    guest/     what runs inside the guests (agent, boot scripts, fence, nfs_writer)
"""

from __future__ import annotations

from hasync_lab.vm import manual
from hasync_lab.vm.driver import LINKS, VmLab, qemu_available
from hasync_lab.vm.image import ensure_image
from hasync_lab.vm.image_build import ImageError
from hasync_lab.vm.wires import VmError

__all__ = ["VmLab", "manual", "VmError", "ImageError", "ensure_image", "qemu_available", "LINKS"]
