"""What the tests (and bench/run.py) share, in one importable place.

* ``support.paths``: the checkout's root and its example inventory;
* ``support.ansible``: role templates rendered by Ansible's own templar, the filter plugin
  loaded as Ansible loads it, a role's defaults, and the facts its tasks/preflight.yml sets;
* ``support.inventories``: small inventories several test modules build on;
* ``support.squidrig``: a real Squid on loopback in front of recording parents.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``; bench/run.py does the same. No test
module imports another test module.
"""
