//! esp-rfid: JSON messages and the plain-text io/avty topics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;

const TOPICS: [&str; 4] = [
    "/rfid/send",
    "/rfid/io/door",
    "/rfid/io/tamper",
    "/rfid/avty",
];

fuzz_target!(|data: &[u8]| {
    let received_at = jiff::Timestamp::UNIX_EPOCH;
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let meta =
        PayloadMeta::new(received_at).with_topic(TOPICS[usize::from(selector) % TOPICS.len()]);
    let _ = xl_fw_esp_rfid::decode(&meta, payload);
});
