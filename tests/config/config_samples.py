"""A good config using the test-only registry entries of conftest.py."""

GOOD = """\
gateway:
  id: gw-test-0001
  timezone: Asia/Shanghai
  language: en
uplink:
  host: 127.0.0.1
  keepalive: 45s
  telemetry_interval: 500ms
buses:
  - {id: rs485-1, type: t_serial, port: /dev/ttyUSB0, baudrate: 2400, parity: E, timeout: 800ms}
  - {id: zigbee, type: t_mqtt}
devices:
  - {id: water-1, site: home, kind: water_meter, protocol: t_meter, bus: rs485-1,
     address: "000000001234", poll: 5m, offline_after: 1h}
  - {id: sos-1, site: home, kind: sos_button, protocol: t_zigbee, bus: zigbee,
     topic: zigbee2mqtt/sos_1}
sites:
  - id: home
    resident: r-1001
    rules:
      - {type: sos}
      - {type: no_water, window: 12h, devices: [water-1]}
      - {type: t_window, window: 4h, active_hours: "22:00-06:00"}
"""
