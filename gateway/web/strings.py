"""The status page's words in English and Chinese (`gateway.language`), sent to the page once
with the HTML; what a device said during a walk test comes from `hearthgate.messages`."""

from __future__ import annotations

from hearthgate.messages import MESSAGES

# id -> (English, Chinese). `{name}` fields are filled in by the page's script.
PAGE_STRINGS: dict[str, tuple[str, str]] = {
    "title": ("hearthgate {gateway}", "hearthgate {gateway}"),
    "login_title": ("Status page: token needed", "状态页：需要令牌"),
    "login_hint": ("The token is gateway.web.token in the gateway's config (secrets.yaml).",
                   "令牌即网关配置中的 gateway.web.token（见 secrets.yaml）。"),
    "login_field": ("token", "令牌"),
    "login_button": ("Open", "打开"),
    "login_wrong": ("Wrong token.", "令牌错误。"),
    "login_braked": ("Too many wrong tokens: wait a minute.", "令牌错误次数过多，请等一分钟。"),
    "connected": ("live", "实时"),
    "disconnected": ("connection lost: reconnecting…", "连接中断，正在重连…"),
    "updated": ("as of {ts}", "更新于 {ts}"),
    "devices": ("Devices", "设备"),
    "col_device": ("device", "设备"),
    "col_site": ("site", "位置"),
    "col_kind": ("kind", "类型"),
    "col_online": ("online", "在线"),
    "col_last_seen": ("last seen", "最后上报"),
    "col_battery": ("battery", "电量"),
    "col_value": ("last value", "最后数值"),
    "online_yes": ("yes", "是"),
    "online_no": ("NO", "否"),
    "not_heard": ("not heard yet", "尚未听到"),
    "never": ("never", "从未"),
    "ago_s": ("{n}s ago", "{n}秒前"),
    "ago_m": ("{n}m ago", "{n}分钟前"),
    "ago_h": ("{n}h ago", "{n}小时前"),
    "ago_d": ("{n}d ago", "{n}天前"),
    "summary": ("{online} of {total} devices online", "{total} 个设备中 {online} 个在线"),
    "coverage": ("Coverage", "监护覆盖"),
    "watching": ("watching", "正在监护"),
    "blind": ("BLIND", "失效"),
    "nothing": ("nothing", "无"),
    "alerts": ("Open alerts", "未结束的告警"),
    "no_alerts": ("no open alerts", "没有未结束的告警"),
    "col_alert": ("alert", "告警"),
    "col_raised": ("raised", "发生时间"),
    "col_message": ("message", "内容"),
    "test_mark": ("test", "测试"),
    "ack_button": ("acknowledge test alert", "确认测试告警"),
    "ack_done": ("acknowledged", "已确认"),
    "ack_real": ("real alert: the care centre acknowledges it", "真实告警：由照护中心确认"),
    "ack_failed": ("not acknowledged: {error}", "未能确认：{error}"),
    "walk": ("Walk test", "巡检测试"),
    "walk_none": ("no walk test running (start one: hearthgate walktest)",
                  "没有进行中的巡检测试（用 hearthgate walktest 开始）"),
    "walk_progress": ("{heard} of {total} devices heard (started by {user})",
                      "已听到 {heard}/{total} 个设备（由 {user} 开始）"),
    "walk_heard": ("heard", "已听到"),
    "walk_waiting": ("waiting", "等待中"),
    "walk_unconfigured": ("heard but not in the config: {list}", "听到但未配置：{list}"),
    "read_only": ("Read-only: only test alerts can be acknowledged here.",
                  "只读页面：这里只能确认测试告警。"),
}


def page_strings(lang: str) -> dict[str, str]:
    """Every string the page shows, in `lang` (English where a text has no translation)."""
    i = 1 if lang == "zh" else 0
    out = {key: pair[i] or pair[0] for key, pair in PAGE_STRINGS.items()}
    out.update({key: pair[i] or pair[0] for key, pair in MESSAGES.items()
                if key.startswith("said.")})
    return out
