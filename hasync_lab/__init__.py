"""hasync's test harness: the namespace lab, the VM lab, the benchmarks and the demos.

Beside the product package ``hasync`` and never imported by it (an import-linter
contract checks this); the product reaches it only through the ``hasync.verbs`` entry
point, when someone types ``hasync lab ...``. Installed by ``make setup`` or as the
extra ``hasync[lab]``.

    ns/      the namespace lab (``from hasync_lab.ns import Lab``), docs/lab.md
    vm/      the VM lab: qemu guests with real DRBD/LVM/NFS, docs/vm.md
    bench/   ``hasync lab bench sync|failover [--vm]``, docs/benchmarks.md
    demo/    ``make demo [VM=1]``
    campaign/  the fault campaign, docs/campaign.md
    cli.py   ``hasync lab up|down|status|exec|crash|fence|cut|heal|bench|demo|campaign``
"""
