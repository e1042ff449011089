// Writes hearthgate's zigbee2mqtt corpus: the payloads zigbee-herdsman-converters (the
// converters zigbee2mqtt 2.x runs) makes of synthetic Zigbee messages, per real model.
//
//   npm ci && node generate.mjs ../../tests/data/zigbee2mqtt/corpus.json
//
// For each model below it takes the real definition, synthesises the messages its
// fromZigbee converters listen for (attribute reports, IAS zone status changes, button and
// scene commands, Tuya datapoints), runs every matching converter as zigbee2mqtt's
// receive extension does (one payload per message, merged over the converters), and
// records the payloads in order with the definition's model, vendor and exposes as
// bridge/devices lists them. The tests replay them through zigbee2mqtt's cache_state.
import {createRequire} from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const zhc = require("zigbee-herdsman-converters");
zhc.setLogger({debug() {}, info() {}, warning() {}, error() {}});
const devicesDir = path.join(path.dirname(require.resolve("zigbee-herdsman-converters")), "devices");
const version = JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve("zigbee-herdsman-converters")), "..", "package.json"))).version;

// model -> the device kind hearthgate configures it as
const MODELS = {
    sos_button: ["TS0215A_sos", "HS1EB/HS1EB-E", "WXKG11LM", "WXKG12LM", "WXKG01LM", "SNZB-01", "SNZB-01P",
        "SNZB-01-KF", "E1812", "E1743", "SBTZB-110", "TS0041"],
    motion_sensor: ["RTCGQ11LM", "SNZB-03", "SNZB-03P", "9290012607", "TS0202", "HS1MS-M"],
    presence_sensor: ["FP1E", "PS-S04D", "ZG-204ZM", "ZG-204ZK", "ZY-M100-S_1", "ZY-M100-24G"],
    door_contact: ["MCCGQ11LM", "MCCGQ01LM", "SNZB-04", "SNZB-04P", "TS0203", "E2013", "HS1DS"],
    fall_sensor: ["HS2FD-EF1-3.0", "MIR-HE200-TY"],
    smoke_sensor: ["HS1SA-E", "TS0205", "JTYJ-GD-01LM/BW", "SMSZB-120"],
    gas_sensor: ["HS1CG-E", "HS1CG", "JTQJ-BF-01LM/BW"],
    co_sensor: ["HS1CA-E", "HS1CA-M"],
    leak_sensor: ["SJCGQ11LM", "SNZB-05", "SNZB-05P", "TS0207_water_leak_detector", "HS1WL/HS3WL"],
};

const ZONE = [1, 0, 4, 0, 8, 0, 2, 0]; // alarm1, clear, tamper, clear, battery low, clear, alarm2, clear
// Synthetic messages per cluster and message type (what a real device sends).
const SYNTH = {
    ssIasZone: {
        commandStatusChangeNotification: ZONE.map((z) => ({zonestatus: z, extendedstatus: 0, zoneID: 1, delay: 0})),
        attributeReport: [{zoneStatus: 1}, {zoneStatus: 0}],
    },
    msOccupancySensing: {attributeReport: [{occupancy: 1}, {occupancy: 1}, {occupancy: 0}]},
    genPowerCfg: {attributeReport: [{batteryPercentageRemaining: 170, batteryVoltage: 29}]},
    genOnOff: {
        commandOn: [{}], commandOff: [{}], commandToggle: [{}], commandOffWithEffect: [{effectid: 0, effectvariant: 0}],
        commandOnWithTimedOff: [{ctrlbits: 0, ontime: 1800, offwaittime: 0}],
        commandTuyaAction: [{value: 0, data: Buffer.from([0])}, {value: 1, data: Buffer.from([1])}, {value: 2, data: Buffer.from([2])}],
        attributeReport: [{onOff: 0}, {onOff: 1}],
    },
    genMultistateInput: {attributeReport: [1, 2, 0, 255, 3, 16, 17, 18].map((v) => ({presentValue: v}))},
    genLevelCtrl: {
        commandMoveWithOnOff: [{movemode: 0, rate: 83}], commandMove: [{movemode: 1, rate: 83}],
        commandStopWithOnOff: [{}], commandStop: [{}],
    },
    ssIasAce: {commandEmergency: [{}], commandPanic: [{}]},
    manuSpecificLumi: {attributeReport: [{322: 1}, {352: 3}, {352: 4}, {322: 0}, {274: 1}, {274: 1}]},
    heimanClusterRadar: {attributeReport: [{occupancy: 1}, {occupancy: 0x21}, {occupancy: 0x11}, {occupancy: 1}, {occupancy: 0}]},
    genBinaryInput: {attributeReport: [{presentValue: 1}, {presentValue: 0}]},
    genBasic: {attributeReport: [{65281: {1: 3045, 3: 23, 100: 0}}]},
    msIlluminanceMeasurement: {attributeReport: [{measuredValue: 20000}]},
    customSonoffSnzb01m: {attributeReport: [{key_action_event: 1}, {key_action_event: 2}]},
};
// Models that pack more into a standard attribute than the standard says.
const MODEL_SYNTH = {
    // Heiman's fall radar: occupancy bit 0, sensor status bits 1-3, fall status bits 4-5.
    "HS2FD-EF1-3.0": {msOccupancySensing: {attributeReport: [0x01, 0x03, 0x11, 0x21, 0x03, 0x01, 0x00].map((o) => ({occupancy: o}))}},
};
// Tuya datapoint values for the keys hearthgate reads (enum/bool/value, as the MCU sends them).
const TUYA_KEYS = new Set(["presence", "occupancy", "fall_down_status", "motion_state", "battery", "smoke", "gas",
    "water_leak", "tamper", "battery_state", "state", "static_dwell_alarm"]);

function loadDefinitions() {
    const byModel = new Map();
    for (const f of fs.readdirSync(devicesDir).filter((f) => f.endsWith(".js") && f !== "index.js")) {
        let defs;
        try { defs = require(path.join(devicesDir, f)).definitions; } catch { continue; }
        for (const d of defs ?? []) if (!byModel.has(d.model)) byModel.set(d.model, d);
    }
    return byModel;
}

// The converters tell devices from endpoints by their class names, as zigbee-herdsman's are.
class Device {
    constructor(def) {
        const fp = def.fingerprint?.[0];
        Object.assign(this, {
            ieeeAddr: "0x00158d0000000000", networkAddress: 1234, type: "EndDevice", powerSource: "Battery",
            modelID: fp?.modelID ?? def.zigbeeModel?.[0] ?? def.model,
            manufacturerName: fp?.manufacturerName ?? def.vendor, meta: {}, customClusters: {},
            interviewState: "SUCCESSFUL",
        });
        this.endpoint = new Endpoint(this);
    }
    save() {}
    getEndpoint() { return this.endpoint; }
    get endpoints() { return [this.endpoint]; }
}

class Endpoint {
    constructor(device) {
        Object.assign(this, {ID: 1, deviceIeeeAddress: device.ieeeAddr, clusters: {}, inputClusters: [],
            outputClusters: [], binds: []});
        this.device = device;
    }
    getDevice() { return this.device; }
    async read() { return {}; }
    async write() {}
    async command() {}
    async bind() {}
    async configureReporting() {}
    async defaultResponse() {}
    getClusterAttributeValue() { return undefined; }
    saveClusterAttributeKeyValue() {}
    supportsInputCluster() { return true; }
    supportsOutputCluster() { return true; }
}

function mockDevice(def) {
    const device = new Device(def);
    return {device, endpoint: device.endpoint};
}

function tuyaMessages(def) {
    const out = [];
    for (const [dp, key] of def.meta?.tuyaDatapoints ?? []) {
        if (!TUYA_KEYS.has(key)) continue;
        const candidates = key === "battery" ? [[2, 80]] : [[1, 1], [4, 1], [4, 2], [1, 0], [4, 0]];
        for (const [datatype, v] of candidates) {
            const data = datatype === 2 ? Buffer.from([0, 0, 0, v]) : Buffer.from([v]);
            out.push({cluster: "manuSpecificTuya", type: "commandDataReport", data: {seq: 1, dpValues: [{dp, datatype, data}]}});
        }
    }
    return out;
}

function messagesFor(def) {
    const out = [];
    const seen = new Set();
    for (const conv of def.fromZigbee) {
        for (const type of [].concat(conv.type)) {
            const key = `${conv.cluster}:${type}`;
            if (seen.has(key)) continue;
            seen.add(key);
            for (const data of (MODEL_SYNTH[def.model] ?? SYNTH)[conv.cluster]?.[type] ?? SYNTH[conv.cluster]?.[type] ?? []) out.push({cluster: conv.cluster, type, data});
        }
    }
    return [...out, ...tuyaMessages(def)];
}

function jsonable(value) {
    return JSON.parse(JSON.stringify(value, (k, v) => (v?.type === "Buffer" ? v.data : v)));
}

async function convert(def, device, endpoint, msg, seq, state, later) {
    const payload = {};
    const meta = {state, device, deviceExposesChanged() {}, logger: console};
    const zmsg = {...msg, endpoint, device, linkquality: 120, groupID: 0, meta: {zclTransactionSequenceNumber: seq}};
    for (const conv of def.fromZigbee) {
        if (conv.cluster !== msg.cluster || ![].concat(conv.type).includes(msg.type)) continue;
        try {
            // Some converters publish later (click counting, occupancy timeouts), as zigbee2mqtt would.
            const converted = await conv.convert(def, zmsg, (p) => later.push(p), {}, meta);
            if (converted) Object.assign(payload, converted);
        } catch (error) {
            if (process.env.DEBUG_CORPUS) console.error(def.model, msg.cluster, msg.type, error.message);
            // A synthetic message a converter does not accept is simply not a corpus entry.
        }
    }
    zhc.postProcessConvertedFromZigbeeMessage(def, payload, {}, device);
    return payload;
}

async function main() {
    const out = process.argv[2];
    const defs = loadDefinitions();
    const devices = [];
    for (const [kind, models] of Object.entries(MODELS)) {
        for (const model of models) {
            const raw = defs.get(model);
            if (!raw) throw new Error(`no definition for ${model}`);
            const def = zhc.prepareDefinition(raw);
            const {device, endpoint} = mockDevice(def);
            let exposes = def.exposes;
            if (typeof exposes === "function") exposes = exposes(device, {});
            const state = {};
            const payloads = [];
            let seq = 0;
            for (const msg of messagesFor(def)) {
                const later = [];
                const payload = await convert(def, device, endpoint, msg, ++seq, state, later);
                if (later.length) await new Promise((resolve) => setTimeout(resolve, 400));
                for (const p of [payload, ...later]) {
                    if (Object.keys(p).length === 0) continue;
                    Object.assign(state, p);
                    payloads.push({message: jsonable({cluster: msg.cluster, type: msg.type, data: msg.data}), payload: jsonable(p)});
                }
            }
            devices.push({
                model: def.model, vendor: def.vendor, description: def.description, kind,
                model_id: device.modelID, manufacturer: device.manufacturerName,
                exposes: jsonable(exposes), payloads,
            });
        }
    }
    const corpus = {
        generator: "tools/z2m_corpus/generate.mjs",
        converters: `zigbee-herdsman-converters ${version}`,
        devices,
    };
    fs.mkdirSync(path.dirname(out), {recursive: true});
    fs.writeFileSync(out, JSON.stringify(corpus, null, 1) + "\n");
    const n = devices.reduce((a, d) => a + d.payloads.length, 0);
    console.log(`${devices.length} models, ${n} payloads -> ${out}`);
    process.exit(0); // converters leave occupancy timers running
}

await main();
