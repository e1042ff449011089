"""What the installer reads, in English and Chinese: one catalogue, keyed by message id.

`text(msg_id, lang, **params)` fills the template of `lang` (falling back to English); the
log keeps English (`lang="en"`) whatever the config says, so that a support engineer can read
any gateway's journal. `translate(message, lang)` turns a finished English message that came
from elsewhere (a config problem, built deep in the loader) into Chinese by matching it against
the English templates of `PATTERNS`: the loader keeps speaking one language and the catalogue
stays in one place. A test checks that every English template has a Chinese one with the same
placeholders (tests/config/test_language.py).

To add a message: one line in `MESSAGES` (or `PATTERNS`) with both languages.
"""

from __future__ import annotations

import re
import string
from functools import cache
from typing import Any

LANGUAGES = ("en", "zh")

# id -> (English, Chinese). Placeholders are str.format fields.
MESSAGES: dict[str, tuple[str, str]] = {
    # what a device said (hearthgate.walk_session.said)
    "said.sos": ("SOS pressed", "按下了 SOS 按钮"),
    "said.sos_released": ("SOS released", "SOS 按钮已松开"),
    "said.fall": ("fall detected", "检测到跌倒"),
    "said.fall_cleared": ("fall cleared", "跌倒已解除"),
    "said.door_opened": ("door opened", "门已打开"),
    "said.door_closed": ("door closed", "门已关闭"),
    "said.motion": ("motion", "有人活动"),
    "said.no_motion": ("no motion", "无人活动"),
    "said.presence": ("someone there", "有人在"),
    "said.no_presence": ("nobody there", "无人"),
    "said.water_used": ("water used: {litres} L (total {total} m³)",
                        "用水 {litres} 升（累计 {total} 立方米）"),
    "said.water_read": ("meter read: {total} m³", "水表读数 {total} 立方米"),
    "said.meter_read": ("meter read: {value} {unit}", "电表读数 {value} {unit}"),
    "said.card": ("card read: {value}", "读到门卡 {value}"),
    "said.alarm": ("alarm: {metric}", "报警：{metric}"),
    "said.other": ("{metric}: {value}", "{metric}：{value}"),
    # hearthgate walktest
    "walk.title": ("Walk test of {gateway}: {heard} of {total} devices heard",
                   "{gateway} 的巡检测试：已听到 {heard}/{total} 个设备"),
    "walk.attached": ("attached to the running service", "已连接到正在运行的服务"),
    "walk.standalone": ("no service running: running the gateway for the walk test",
                        "服务未运行：为巡检测试临时运行网关"),
    "walk.hint": ("Press each button, open each door, walk past each sensor, run a tap. "
                  "Ctrl-C ends.",
                  "请逐个按下按钮、打开每扇门、走过每个传感器、打开水龙头。按 Ctrl-C 结束。"),
    "walk.col_device": ("device", "设备"),
    "walk.col_site": ("site", "位置"),
    "walk.col_kind": ("kind", "类型"),
    "walk.col_heard": ("heard", "已听到"),
    "walk.col_said": ("said", "内容"),
    "walk.yes": ("yes", "是"),
    "walk.no": ("—", "—"),
    "walk.heard": ("heard {device} ({kind}): {said}", "听到 {device}（{kind}）：{said}"),
    "walk.unconfigured": ("heard a device the config does not name ({protocol} {key}); add:",
                          "听到配置中没有的设备（{protocol} {key}），可添加："),
    "walk.alert": ("test alert {type} {state} at {site} ({alert_id}): {message}",
                   "测试报警 {type} {state}，位置 {site}（{alert_id}）：{message}"),
    "walk.ack_hint": ("clear it: hearthgate ack -c {config} {alert_id}",
                      "清除：hearthgate ack -c {config} {alert_id}"),
    "walk.summary": ("Walk test ended ({reason}): {heard} of {total} devices heard",
                     "巡检测试结束（{reason}）：已听到 {heard}/{total} 个设备"),
    "walk.missing": ("never heard: {devices}", "未听到：{devices}"),
    "walk.all_heard": ("every device was heard", "所有设备均已听到"),
    "walk.reason.all_heard": ("all heard", "全部听到"),
    "walk.reason.timeout": ("time is up", "超时"),
    "walk.reason.interrupted": ("interrupted", "已中断"),
    "walk.reason.lost": ("the service stopped", "服务已停止"),
    "walk.broker_down": ("cannot reach the local broker {host}:{port} ({error}); unconfigured "
                         "Zigbee devices will not be listed",
                         "无法连接本地消息服务器 {host}:{port}（{error}），将无法列出未配置的"
                         " Zigbee 设备"),
    # hearthgate check
    "check.ok": ("ok: {summary}", "正常：{summary}"),
    "check.summary": ("{devices} devices, {buses} buses, {sites} sites, {rules} rules",
                      "{devices} 个设备、{buses} 条总线、{sites} 个位置、{rules} 条规则"),
    # hearthgate devices / status
    "devices.col_device": ("device", "设备"),
    "devices.col_site": ("site", "位置"),
    "devices.col_kind": ("kind", "类型"),
    "devices.col_last_seen": ("last seen", "最后上报"),
    "devices.col_last_value": ("last value", "最后数值"),
    "devices.col_battery": ("battery", "电量"),
    "devices.col_online": ("online", "在线"),
    "devices.never": ("never", "从未"),
    "devices.ago": ("{n}{unit} ago", "{n}{unit}前"),
}

# English templates of messages built elsewhere (config problems) -> Chinese. `{name}` matches
# any text; the same names must appear in both.
PATTERNS: list[tuple[str, str]] = [
    ("unknown key '{key}'", "未知的键 '{key}'"),
    ("did you mean '{name}'?", "您是不是想写 '{name}'？"),
    ("field required", "缺少必填项"),
    ("missing required key '{key}'", "缺少必填的键 '{key}'"),
    ("{what} must be one of {choices}", "{what} 必须是以下之一：{choices}"),
    ("{text}; expected one of {choices}", "{text}；应为以下之一：{choices}"),
    ("unknown {what} '{name}'", "未知的{what} '{name}'"),
    ("duplicate {what} id '{name}'", "重复的{what} id '{name}'"),
    ("{prefix}: {rest}", "{prefix}：{rest}"),
]


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def text(msg_id: str, lang: str = "en", **params: Any) -> str:
    """The message `msg_id` in `lang` (English if the language or the id is unknown)."""
    en, zh = MESSAGES.get(msg_id, (msg_id, msg_id))
    template = zh if lang == "zh" else en
    return template.format_map(_Default(params))


@cache
def _pattern(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>.+?)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def translate(message: str, lang: str) -> str:
    """A finished English message in `lang`: the first template of `PATTERNS` it matches,
    applied to its parts in turn (a message may nest: `'x': unknown key 'y'`)."""
    if lang != "zh":
        return message
    for en, zh in PATTERNS:
        m = _pattern(en).match(message)
        if m is None:
            continue
        parts = {k: translate(v, lang) if k in ("rest", "text") else v
                 for k, v in m.groupdict().items()}
        return zh.format(**parts)
    return message
