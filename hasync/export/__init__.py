"""Export a hasync cluster to the field's standard stack: Pacemaker + Corosync.

Pure functions from ``hasync.model`` to text (``pacemaker.build`` -> ``cib_model.Cib`` ->
``render_cib`` / ``render_crm`` / ``render_pcs``; ``corosync.corosync_conf``); the
only effects (agent metadata, writing files) live in ``cli``.
"""
