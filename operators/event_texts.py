"""bkmonitor's event texts: the anomaly messages and process-event titles its records write.

bkmonitor writes them through ``gettext``; its default language is Chinese, so Chinese
(``zh``) is the default here too. ``en`` gives the English of bkmonitor's own catalogue
(``locale/en/LC_MESSAGES/django.po``). Values are formatted with Python's ``str.format`` as
bkmonitor does, so a missing field reads ``None``.

One difference: bkmonitor's corefile texts format the string before translating it, so its
catalogue never matches them and they stay Chinese even in English; here ``en`` translates
them as well.
"""

# bkmonitor's texts use full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("zh", "en")

TEXTS: Mapping[str, Mapping[str, str]] = {
    "zh": {
        "agent": "GSE AGENT 失联",
        "ping": "Ping不可达",
        "disk_full": "磁盘({})剩余空间只有{}%",
        "disk_readonly": "磁盘({})只读告警",
        "oom": "发现OOM异常事件发生（进程:{}），共OOM次数{}次, 信息:{}",
        "corefile_executable_signal": "{}进程因为{}异常信号产生corefile：{}",
        "corefile_executable": "{}进程产生corefile：{}",
        "corefile_signal": "进程因为{}异常信号产生corefile：{}",
        "corefile": "产生corefile：{}",
        "process": "事件类型: {}, 事件内容: {}",
    },
    "en": {
        "agent": "GSE AGENT Lost",
        "ping": "Ping Unreachable",
        "disk_full": "Disk ({}) space remaining only {}%",
        "disk_readonly": "Disk ({}) read-only Alarm",
        "oom": (
            "Discover OOM abnormal events (process: {}), a total of OOM frequency {} times, "
            "information: {}"
        ),
        "corefile_executable_signal": "{} Process generates corefile due to {} abnormal signal: {}",
        "corefile_executable": "{} Process generates Corefile: {}",
        "corefile_signal": "Process due to {} abnormal signal generates corefile: {}",
        "corefile": "Corefile: {}",
        "process": "Event type: {}, event content: {}",
    },
}
"""``clean_anomaly_message`` of each record class, and the process record's ``_title_``."""

PROCESS_EVENT_NAMES: Mapping[str, Mapping[str, str]] = {
    "zh": {
        "process_restart_success": "进程重启成功",
        "process_restart_failed": "进程重启失败",
        "process_cancel_restart": "进程不再托管",
        "process_resource_limit_exceed": "进程资源超限（单进程维度）",
        "process_group_resource_limit_exceed": "进程资源超限（进程组维度）",
    },
    "en": {
        "process_restart_success": "Process Restart success",
        "process_restart_failed": "Process restart failed",
        "process_cancel_restart": "Process no longer hosting",
        "process_resource_limit_exceed": "Process Resources Excess (Single Process dimension)",
        "process_group_resource_limit_exceed": (
            "Substitute resource exceeding the limit (process group dimension)"
        ),
    },
}
"""bkmonitor's ``constants.strategy.GSE_PROCESS_EVENT_NAME``."""


def text(language: str, name: str, *values: object) -> str:
    """The template ``name`` in ``language``, formatted with ``values``."""
    return TEXTS[language][name].format(*values)


def process_title(language: str, event_name: object, content: object) -> str:
    """``gse_process_event.py`` ``flat()``'s ``_title_``: the event's name (``None`` when it is
    not one bkmonitor names) and its content."""
    name = PROCESS_EVENT_NAMES[language].get(event_name) if isinstance(event_name, str) else None
    return text(language, "process", name, content)
