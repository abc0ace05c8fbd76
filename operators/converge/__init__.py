"""bkmonitor's converge layer (``alarm_backends/service/converge/``) as pure logic.

``context`` parses an action and builds its converge context, ``config`` normalises its
``converge_config``, ``dimension`` names the converge, ``plan`` gives an action its dimension,
state key and index keys, ``functions`` holds the ten converge functions, ``records`` the typed
records, ``engine`` the per-dimension state object (:class:`engine.Dimension`), ``biz`` the
business summaries (:class:`biz.Business`), ``shields`` the shield table, ``driver`` the
routing of a whole stream without Bytewax and ``audit`` the audit record of each decision.
"""
