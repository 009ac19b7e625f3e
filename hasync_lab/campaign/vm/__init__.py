"""The fault campaign's vm tier: real DRBD 8.4, LVM, kernel NFS and NFS clients under qemu."""
