"""What the tests share, in one importable place (pytest puts ``tests/`` on the path: pyproject's
``pythonpath``; the benchmarks import nothing from here).

* ``support.paths``: the checkout's root and its example inventory;
* ``support.ansible``: role templates rendered by Ansible's own templar (``carpfarm.lab.render``) with
  the header every template prints, the filter plugin loaded as Ansible loads it, a role's defaults,
  and the facts its tasks/preflight.yml sets;
* ``support.inventories``: small inventories several test modules build on;
* ``support.probe``: lines as playbooks/files/carpfarm-probe.py prints them.

The real Squid on loopback the tests and benchmarks both start is ``carpfarm.lab.squidrig``. No test
module imports another test module.
"""
