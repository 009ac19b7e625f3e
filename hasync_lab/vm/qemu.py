"""The qemu command line of one VM (pure): machine, disks, the two multicast L2s, the
console, the serial null modem, the BMC wires and the monitor (see driver.py's wiring)."""

from __future__ import annotations

from pathlib import Path

from hasync_lab.vm.image import Image
from hasync_lab.vm.seed import Guest

MEM_MIB = 256


def qemu_argv(lab_dir: Path, image: Image, g: Guest, index: int, groups: dict, peer: str | None,
              server: bool, init: str = "busybox") -> list[str]:
    """The `qemu-system-x86_64 ... -daemonize` argv of guest *g* (the *index*-th) in the lab
    at *lab_dir*; *groups*: link -> (multicast group, port); *peer*: the other node (whose
    BMC our ttyS2 is wired to); *server*: this node listens on the serial socket."""
    d = lab_dir / g.name
    mac = f"52:54:00:4a:{index + 1:02x}"
    append = "console=ttyS0,115200 root=/dev/vda rw quiet loglevel=3 net.ifnames=0 panic=-1 " \
             "systemd.show_status=0 8250.nr_uarts=4"
    if init == "systemd":
        append += " hasync.init=systemd"
    argv = [
        "qemu-system-x86_64", "-name", g.name, "-accel", "tcg", "-m", str(g.mem_mib or MEM_MIB), "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
        "-drive", f"file={d / 'root.qcow2'},if=virtio,format=qcow2,cache=unsafe",
    ]
    if g.role == "node":
        argv += ["-drive", f"file={d / 'drbd.img'},if=virtio,format=raw,cache=unsafe"]
    argv += ["-drive", f"file={d / 'seed.img'},if=virtio,format=raw,readonly=on"]
    pub_group, pub_port = groups["public"]
    argv += ["-netdev", f"socket,id=pub,mcast={pub_group}:{pub_port},localaddr=127.0.0.1",
             "-device", f"virtio-net-pci,netdev=pub,mac={mac}:01"]
    if g.role == "node":
        rep_group, rep_port = groups["heartbeat"]
        argv += ["-netdev", f"socket,id=rep,mcast={rep_group}:{rep_port},localaddr=127.0.0.1",
                 "-device", f"virtio-net-pci,netdev=rep,mac={mac}:02"]
    argv += ["-chardev", f"socket,id=con,path={d / 'console.sock'},server=on,wait=off,logfile={d / 'console.log'}",
             "-serial", "chardev:con"]
    if g.role == "node":
        assert peer is not None
        if server:
            ser = f"socket,id=ser1,path={lab_dir / 'serial.sock'},server=on,wait=off"
        else:
            ser = f"socket,id=ser1,path={lab_dir / 'serial.sock'},reconnect=1"
        argv += ["-chardev", ser, "-serial", "chardev:ser1",
                 # ttyS2: a wire to the peer's BMC monitor (the lab fence agent's switch)
                 "-chardev", f"socket,id=bmcwire,path={lab_dir / peer / 'bmc.sock'},reconnect=1",
                 "-serial", "chardev:bmcwire",
                 # our own BMC: a second monitor the peer's ttyS2 connects to
                 "-chardev", f"socket,id=bmc,path={d / 'bmc.sock'},server=on,wait=off",
                 "-mon", "chardev=bmc,mode=readline"]
    argv += ["-device", "virtio-rng-pci"]  # entropy at boot: no wait for crng init
    argv += ["-monitor", f"unix:{d / 'monitor.sock'},server=on,wait=off",
             "-pidfile", str(d / "qemu.pid"), "-daemonize"]
    return argv
