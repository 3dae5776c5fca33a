//! Zigbee2MQTT: device state objects and availability messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

const TOPICS: [&str; 3] = [
    "zigbee2mqtt/front-door",
    "zigbee2mqtt/front-door/availability",
    "zigbee2mqtt",
];

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let meta =
        PayloadMeta::new(received_at).with_topic(TOPICS[usize::from(selector) % TOPICS.len()]);
    let _ = xl_fw_zigbee2mqtt::decode(&meta, payload);
});
