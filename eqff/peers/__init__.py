"""Peer force fields (MACE, NequIP, SchNetPack's PaiNN) timed and trained beside eqff.

The peers pin dependencies that clash with eqff's own (mace-torch pins e3nn 0.4.4, schnetpack
pins an old sympy, nequip needs e3nn 0.6), so they live in virtual environments of their own,
made by ``create_venv.sh`` (MACE and SchNetPack) and ``create_nequip_venv.sh`` (NequIP). The
scripts run there as subprocesses, ``time_peer.py`` by ``eqff report --peers`` and
``train_peer.py`` by ``eqff train-peer``, import nothing of eqff; ``run.py`` and
``learning_curve.py`` are eqff's side of them.
"""
