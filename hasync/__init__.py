"""hasync: a two-node active/passive HA storage toolkit (DRBD -> LVM -> fs -> VIP -> NFS)."""

__version__ = "0.1.0"
