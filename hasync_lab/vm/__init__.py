"""The VM lab: qemu guests with real DRBD, LVM and kernel NFS (`hasync lab up --vm`).

Python API (tests): :class:`VmLab` (``driver.py``); image: :func:`ensure_image`;
the storage steps by hand: ``manual``; issue 6's scenario: ``scenario``. The
``hasync lab VERB`` handlers for VM labs are in ``verbs.py``. See docs/vm.md.

    driver     qemu guests, their consoles, cables, power and BMC wires (VmLab)
    image      the cached Debian 12 guest image (built once)
    seed       per-VM seed disks: the hasync source, the guest scripts, the identity
    manual     DRBD/LVM/NFS steps by hand, the NFS client's record stream
    scenario   crash, takeover, client resumed, rejoin: measured step by step
    verbs      up, down, status, exec, crash, fence, cut, heal, start
    guest/     what runs inside the guests (agent, boot scripts, fence, nfs_writer)
"""

from __future__ import annotations

from hasync_lab.vm import manual
from hasync_lab.vm.driver import LINKS, VmError, VmLab, qemu_available
from hasync_lab.vm.image import ImageError, ensure_image

__all__ = ["VmLab", "manual", "VmError", "ImageError", "ensure_image", "qemu_available", "LINKS"]
