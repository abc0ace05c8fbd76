"""bkmonitor's converge layer (bkmonitor.md §5) as pure logic: one module per concern.

``context`` builds the converge context of an action, ``config`` normalises its
``converge_config``, ``dimension`` names the converge, ``functions`` holds the ten converge
functions, ``state`` the per-dimension model, ``engine`` the decide/on_timer steps, ``biz`` the
second-level business summary and ``audit`` the audit record of each decision.
"""
