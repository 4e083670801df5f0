"""Simulator: one real controller and N light simulated agents, with churn (issue 11).

``.venv/bin/python -m bench.sim [--agents 200] [--json-out FILE]`` from the
repository root. It starts ``ztos init`` + ``ztos controller serve`` on a free
loopback port in a temporary directory (``zsim-*``, removed afterwards) and
runs every agent in this one process (asyncio + httpx, one keep-alive mTLS
connection and one client certificate per agent; ``bench.sim.agent`` says
what each sends). Only the public HTTP API is used.

Phases, all in one run:

1. **Baseline**: two hosts in one cell enrol and start; ``--rounds`` rounds of
   changes are measured with one affected agent each (``bench.sim.run``:
   join, leave = node delete, revoke, quarantine = ``set-attr
   admin.healthy=false`` and its release, posture flap = the agent reporting
   itself non-compliant and compliant again, policy apply).
2. **Enrolment** of the other N-2 hosts over ``--concurrency`` lanes (token +
   ``POST /api/v1/enroll``, keys and CSRs made before the clock): hosts/s,
   and ``POST /enroll`` p50 of the first 100 and the last 100 to complete.
3. **Start**: all N agents start together; time until the network is quiet.
4. **Idle**: controller CPU over ``--idle-seconds`` with N agents watching.
5. **Map fetch**: 50 agents fetch their map one after another on the quiet
   network, each followed by ``healthz`` over the same connection (baseline).
6. **Changes at N**: the same rounds as the baseline, in random cells.
7. **Map build**: after the controller stops, its service object is opened
   in this process over the run's directory and times the node map of the
   same 50 hosts (the first build resolves the policy for the revision).

How a change is measured (write -> last agent, bytes per change, affected,
woken) is defined in ``bench.sim.window``; the network and policy in
``bench.sim.network``. Controller CPU and RSS come from
``/proc/PID/stat`` and ``/proc/PID/status`` (VmRSS, VmHWM).
"""
