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
    # hearthgate devices / status (hearthgate.views): the English is what scripts and the docs
    # quote, so it stays exactly as it was before the catalogue.
    "devices.col_device": ("DEVICE", "设备"),
    "devices.col_site": ("SITE", "位置"),
    "devices.col_kind": ("KIND", "类型"),
    "devices.col_protocol": ("PROTOCOL", "协议"),
    "devices.col_online": ("ONLINE", "在线"),
    "devices.col_last_seen": ("LAST SEEN", "最后上报"),
    "devices.col_battery": ("BATTERY", "电量"),
    "devices.col_link": ("LINK", "信号"),
    "devices.col_last_value": ("LAST VALUE", "最后数值"),
    "devices.online": ("yes", "在线"),
    "devices.offline": ("NO", "离线"),
    "devices.offline_why": ("NO: {why}", "离线：{why}"),
    "devices.not_heard": ("not heard yet", "尚未听到"),
    "devices.never": ("never", "从未"),
    "devices.ago": ("{n}{unit} ago", "{n}{unit}前"),
    "devices.unit.d": ("d", "天"),
    "devices.unit.h": ("h", "小时"),
    "devices.unit.m": ("m", "分钟"),
    "devices.unit.s": ("s", "秒"),
    "devices.true": ("True", "是"),
    "devices.false": ("False", "否"),
    "devices.not_running": ("hearthgate is not running: devices as last saved{when}",
                            "hearthgate 服务未运行：以下是最后保存的设备状态{when}"),
    "devices.saved_at": (" at {ts}", "（保存于 {ts}）"),
    "devices.nothing_saved": (" (nothing saved yet)", "（尚未保存过）"),
    "devices.summary": ("{online} of {total} devices online{unheard}{when}",
                        "{total} 个设备中 {online} 个在线{unheard}{when}"),
    "devices.summary_unheard": (", {n} not heard yet", "，{n} 个尚未听到"),
    "devices.now": (" (now)", "（当前）"),
    "devices.as_of": (" (as of {ts})", "（截至 {ts}）"),
    "status.running": ("hearthgate {gateway}: running, up {uptime}",
                       "hearthgate {gateway}：正在运行，已运行 {uptime}"),
    "status.uplink": ("uplink: {state} to {host}:{port}", "上行链路：{state} {host}:{port}"),
    "status.connected": ("connected", "已连接到"),
    "status.not_connected": ("NOT CONNECTED", "未连接到"),
    "status.outbox": ("outbox: {counts}{degraded}", "待发送队列：{counts}{degraded}"),
    "status.outbox_count": ("{n} {kind}", "{kind} {n} 条"),
    "status.outbox.urgent": ("urgent", "紧急"),
    "status.outbox.alert": ("alert", "报警"),
    "status.outbox.telemetry": ("telemetry", "遥测"),
    "status.degraded": (" (store degraded: disk full?)", "（本地存储降级：磁盘已满？）"),
    "status.site": ("site {site}:", "位置 {site}："),
    "status.watching": ("  watching: {rules}", "  正在监测：{rules}"),
    "status.nothing": ("nothing", "无"),
    "status.blind": ("  BLIND:    {rule}: {why}", "  失明：    {rule}：{why}"),
    "status.not_running": ("hearthgate {gateway} is not running (no service answers at {where})",
                           "hearthgate {gateway} 未运行（{where} 上没有服务应答）"),
    "control.error": ("error: {message}", "错误：{message}"),
}

# English templates of messages built elsewhere (config problems) -> Chinese. `{name}` matches
# any text (`{section}` and `{what}` one word); the same names must appear in both.
PATTERNS: list[tuple[str, str]] = [
    # Why a rule is blind (hearthgate.rules.coverage) or a device offline, as drivers and
    # rules word it: `views.reason_text` splits a reason at its "; " and translates each part.
    ("still learning ({n} of {m} days; fixed window meanwhile)",
     "仍在学习作息（已学 {n}/{m} 天；暂用固定时段）"),
    ("resident away", "住户外出"),
    ("no device to read", "没有可读取的设备"),
    ("cannot tell (internal error)", "无法判断（内部错误）"),
    ("zigbee2mqtt bridge offline", "zigbee2mqtt 网桥离线"),
    ("433 MHz receiver: {why}", "433 MHz 接收器：{why}"),
    ("bus {bus} down: {why}", "总线 {bus} 断开：{why}"),
    ("bus {bus} is down: {why}", "总线 {bus} 断开：{why}"),
    ("bus {bus} went down: {why}", "总线 {bus} 断开：{why}"),
    ("no reply to {request}", "{request} 无应答"),
    ("never heard", "从未听到"),
    ("{ids} offline ({rest})", "{ids} 离线（{rest}）"),
    ("{ids} offline", "{ids} 离线"),
    # the control socket, client side (hearthgate.control.ask, hearthgate.views)
    ("the service refused '{command}': {why} (is it an older version?)",
     "服务拒绝了 '{command}'：{why}（是旧版本吗？）"),
    ("cannot connect to the control socket {path}: {why}", "无法连接控制套接字 {path}：{why}"),
    ("the control socket {path} did not answer within {n} s",
     "控制套接字 {path} 在 {n} 秒内没有应答"),
    ("the control socket {path} broke off: {why}", "控制套接字 {path} 连接中断：{why}"),
    ("the control socket {path} closed without an answer", "控制套接字 {path} 未应答就关闭了"),
    ("the control socket {path} answered something that is not hearthgate's: {line}",
     "控制套接字 {path} 的应答不是 hearthgate 的：{line}"),
    ("the control socket {path} answered {what}, not a JSON object",
     "控制套接字 {path} 的应答是 {what}，不是 JSON 对象"),
    # the frame of every problem line (hearthgate.config.models.ConfigProblem.format)
    ("{where}: error: {rest}", "{where}: 错误：{rest}"),
    ("{where}: warning: {rest}", "{where}: 警告：{rest}"),
    ("  hint: {rest}", "  提示：{rest}"),
    ("{path}: ok: {rest}", "{path}: 正常：{rest}"),
    ("{devices} devices, {buses} buses, {sites} sites, {rules} rules",
     "{devices} 个设备、{buses} 条总线、{sites} 个位置、{rules} 条规则"),
    # whole messages, most specific first
    ("bus '{name}' has no devices", "总线 '{name}' 上没有设备"),
    ("device '{a}' has the same {what} as device '{b}' (line {line}) on bus '{bus}': the "
     "gateway cannot tell them apart",
     "设备 '{a}' 与设备 '{b}'（第 {line} 行）在总线 '{bus}' 上的 {what} 相同：网关无法区分它们"),
    ("each device on one bus needs its own {what}: check the nameplate or pairing",
     "同一总线上的每个设备都需要自己的 {what}：请核对铭牌或配对信息"),
    ("site '{site}' has a '{rule}' rule but no {thing}: it can never fire",
     "位置 '{site}' 有 '{rule}' 规则，但没有 {thing}：该规则永远不会触发"),
    ("add the {thing} to 'devices:' with site: {site}, or remove the rule",
     "请在 'devices:' 中添加 {thing}（site: {site}），或删除该规则"),
    ("the config is empty: it needs at least 'gateway:' and 'uplink:'",
     "配置文件为空：至少需要 'gateway:' 和 'uplink:'"),
    ("the top level must be a mapping (gateway:, uplink:, buses:, devices:, sites:), not a list",
     "顶层必须是键值映射（gateway:、uplink:、buses:、devices:、sites:），不能是列表"),
    ("'{section}:' should be a mapping of keys, not a list",
     "'{section}:' 应为键值映射，不能是列表"),
    ("a tab character: YAML indents with spaces only", "出现制表符：YAML 只能用空格缩进"),
    ("YAML syntax error: {detail}", "YAML 语法错误：{detail}"),
    ("the list opened at line {line}, column {col}", "列表从第 {line} 行第 {col} 列开始"),
    ("duplicate key '{key}' (first at line {line}, column {col})",
     "重复的键 '{key}'（第一次出现在第 {line} 行第 {col} 列）"),
    ("duplicate device id '{name}' (first at line {line})",
     "重复的设备 id '{name}'（第一次出现在第 {line} 行）"),
    ("duplicate site id '{name}' (first at line {line})",
     "重复的位置 id '{name}'（第一次出现在第 {line} 行）"),
    ("duplicate bus id '{name}' (first at line {line})",
     "重复的总线 id '{name}'（第一次出现在第 {line} 行）"),
    ("the address '{address}' has {n} digits, not {m}",
     "地址 '{address}' 有 {n} 位，而不是 {m} 位"),
    ("write all {m} digits with the leading zeros: {address} (check the nameplate for a "
     "dropped digit)", "请写全 {m} 位，包括前导零：{address}（请核对铭牌，看是否漏了一位）"),
    ("secret '{name}' cannot be read: no secrets.yaml beside the config (looked for {path})",
     "无法读取密钥 '{name}'：配置文件旁没有 secrets.yaml（查找了 {path}）"),
    ("secret '{name}' cannot be read: {why}", "无法读取密钥 '{name}'：{why}"),
    ("'{value}' is not a duration: use a number with a unit, like 500ms, 30s, 10m, 12h or 3d",
     "'{value}' 不是时长：请写数字加单位，例如 500ms、30s、10m、12h 或 3d"),
    ("'{value}' is not a time of day: use HH:MM, like 07:00 or 22:30",
     "'{value}' 不是一天中的时间：请写 HH:MM，例如 07:00 或 22:30"),
    ("'{value}' is not a valid gateway id: use 3 to 64 characters of a-z, 0-9 and '-'",
     "'{value}' 不是有效的网关 id：请使用 3 到 64 个 a-z、0-9 和 '-' 字符"),
    ("should be {choices}, got {value}", "应为 {choices}，实际为 {value}"),
    ("cannot read {value} as int", "无法把 {value} 读作整数"),
    ("give the full path of the file; the service must be able to read it",
     "请写文件的完整路径；服务必须能读取它"),
    ("the alert store lives there: choose a directory the service can write (default {path})",
     "报警数据存放在这里：请选择服务可以写入的目录（默认 {path}）"),
    ("data_dir {path} cannot be created: {why}", "无法创建 data_dir {path}：{why}"),
    ("{what} {path} cannot be read: {why}", "无法读取 {what} {path}：{why}"),
    ("more than {n} values (aliases expanding?)", "超过 {n} 个值（别名在展开？）"),
    ("no device '{name}' in this site", "此位置没有设备 '{name}'"),
    ("this site has no devices", "此位置没有任何设备"),
    ("no bus with id '{name}'", "没有 id 为 '{name}' 的总线"),
    ("unknown tag '{tag}' (the only tag a config uses is !secret)",
     "未知的标签 '{tag}'（配置中唯一可用的标签是 !secret）"),
    ("unknown top-level key '{key}'", "未知的顶层键 '{key}'"),
    ("missing required key '{key}'", "缺少必填的键 '{key}'"),
    ("unknown key '{key}'", "未知的键 '{key}'"),
    # gateway.web, the local status page (hearthgate.config.models.WebSection, checks)
    ("allowed keys: {keys}", "允许的键：{keys}"),
    ("expected HOST:PORT, got {value}", "应为 主机:端口，实际为 {value}"),
    ("port out of range in {value}", "端口超出范围：{value}"),
    ("port 0 in {value}: the page needs a port a browser can name",
     "{value} 中的端口为 0：状态页需要浏览器能访问的固定端口"),
    ("the page's token must be at least {n} characters (e.g. from: openssl rand -hex 16)",
     "状态页的令牌至少需要 {n} 个字符（可用 openssl rand -hex 16 生成）"),
    ("the page's token must not contain spaces or line breaks",
     "状态页的令牌不能包含空格或换行"),
    ("the status page listens on {where} over plain HTTP: anyone on that network who sees"
     " the token can read the page and acknowledge test alerts",
     "状态页在 {where} 上以明文 HTTP 提供：该网络中看到令牌的任何人都能查看页面并确认测试告警"),
    ("remove 'web:' once the flat is handed over, or listen on {local} and reach it with:"
     " {ssh}",
     "交付后请删除 'web:'，或改为监听 {local}，并用以下命令访问：{ssh}"),
    ("the status page (gateway.web.listen: {listen}) cannot listen: {why}; the gateway will"
     " run without it and retry",
     "状态页（gateway.web.listen: {listen}）无法监听：{why}；网关将在没有状态页的情况下运行并重试"),
    ("unknown bus type '{name}'", "未知的总线类型 '{name}'"),
    ("unknown protocol '{name}'", "未知的协议 '{name}'"),
    ("unknown device kind '{name}'", "未知的设备类型 '{name}'"),
    ("unknown rule type '{name}'", "未知的规则类型 '{name}'"),
    ("unknown profile '{name}'", "未知的规则模板 '{name}'"),
    ("known protocols: {names}", "已知的协议：{names}"),
    ("known rule types: {names}", "已知的规则类型：{names}"),
    ("did you mean '{name}'?", "您是不是想写 '{name}'？"),
    # where a problem is: the context before the message, then the message itself
    ("site '{site}', rule '{rule}': {rest}", "位置 '{site}' 的规则 '{rule}'：{rest}"),
    ("device '{name}': {rest}", "设备 '{name}'：{rest}"),
    ("bus '{name}': {rest}", "总线 '{name}'：{rest}"),
    ("site '{name}': {rest}", "位置 '{name}'：{rest}"),
    ("{section}: {rest}", "{section}：{rest}"),
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
        # A section or a key name is one word: it must not swallow a sentence.
        word = m.group(1) in ("section", "what")
        out.append(f"(?P<{m.group(1)}>[\\w.]+)" if word else f"(?P<{m.group(1)}>.+?)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def translate(message: str, lang: str) -> str:
    """A finished English message in `lang`: the first template of `PATTERNS` it matches,
    applied to its parts in turn (a message may nest: `device 'x': unknown key 'y'`). A line
    no template matches stays English: better than a wrong guess."""
    if lang != "zh":
        return message
    for en, zh in PATTERNS:
        m = _pattern(en).match(message)
        if m is None:
            continue
        # `rest` is itself a message (after its context): translated in turn.
        parts = {k: translate(v, lang) if k == "rest" else v for k, v in m.groupdict().items()}
        if "\n" in message:
            break  # a problem with its hint: translated line by line below
        return zh.format(**parts)
    if "\n" in message:
        return "\n".join(translate(line, lang) for line in message.split("\n"))
    return message


_LANGUAGE_LINE = re.compile(r"^\s*language:\s*[\"']?(zh|en)\b", re.MULTILINE)


def language_of_file(text: str) -> str | None:
    """`gateway.language` read from a config's text without parsing it: a file too broken
    to load still tells its installer what is wrong in the installer's language."""
    m = _LANGUAGE_LINE.search(text)
    return m.group(1) if m else None
