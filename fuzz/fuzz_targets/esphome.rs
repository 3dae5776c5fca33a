//! ESPHome: plain-text states; the first line of the input is the topic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (topic, payload) = data.split_at(split);
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    let meta = PayloadMeta::new(received_at).with_topic(topic);
    let _ = xl_fw_esphome::decode(&meta, payload.get(1..).unwrap_or_default());
});
