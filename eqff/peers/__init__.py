"""Peer force fields (MACE, SchNetPack's PaiNN) timed beside eqff.

Nothing here is imported by eqff. The peers pin dependencies that clash with eqff's own
(mace-torch pins e3nn 0.4.4, schnetpack pins an old sympy), so they live in a separate virtual
environment made by ``create_venv.sh``, and ``time_peer.py`` is run there as a subprocess by
``eqff report --peers``.
"""
