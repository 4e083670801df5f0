"""BGP EVPN with FRR: the rendered configuration, the daemons, and vtysh.

``spec`` is the desired routing state (pure data); ``frrconf`` renders it
(pure); ``frr`` runs zebra and bgpd for one instance and talks to them through
vtysh (the only module that shells out to FRR).
"""
