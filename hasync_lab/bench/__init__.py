"""The benchmarks behind ``hasync lab bench``: numbers in docs/benchmarks.md.

    failover           hasync vs heartbeat 3 vs keepalived on the namespace lab: what runs, the report
    failover_trials    its runs on one lab (Bench): soak, crash trials, footprint at rest
    failover_lab       its tools on the lab: VIPs, packet loss, busy CPUs, stall meter, /proc figures
    failover_settings  its settings, the peers' config files and the figures (pure)
    failover_peers     starting and stopping one daemon of each tool on a lab node
    failover_floor     the bare heartbeat loop (Python and C): the idle-CPU floor
    probe              the listener, client probe and stall meter (run with python3)
    sync               hasync watch vs unison-only and lsyncd
    vm_failover        crash to client I/O resumed on the VM lab, vs the same by hand
    vm_pacemaker       its peers: the same crash with Pacemaker running the chain (--peers)
"""
